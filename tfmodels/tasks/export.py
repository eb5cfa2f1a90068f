"""Exports a trained model directory as a verified SavedModel for TensorFlow Serving."""

from __future__ import annotations

import os

from tfmodels import data as tfm_data
from tfmodels import export as tfm_export
from tfmodels.data import truncation
from tfmodels.config import ConfigError, ExperimentConfig
from tfmodels.export import huggingface as tfm_huggingface
from tfmodels.tasks import common

load_run_config = common.load_run_config


FORMATS = ("saved_model", "huggingface")


def run(config: ExperimentConfig, format: str = "saved_model") -> str:  # noqa: A002 - the flag's name
    """Exports `<model_dir>/model.keras`; returns the written directory.

    `saved_model` writes `<export.export_base>/<export.model_name>/<version>/` for TF Serving:
    text classifiers get a raw-string `serving_default` signature; MLPs take float features
    with the training normalization inside the graph. `huggingface` writes a `transformers`
    BERT directory `<export.export_base>/<export.model_name>/` (BERT models only).

    Args:
        config: ExperimentConfig. Usually the model directory's own config.yaml.
        format: str. "saved_model" or "huggingface". Defaults to "saved_model".
    """
    e = config.export
    if format not in FORMATS:
        raise ConfigError(f"--format={format!r} unknown; choose one of {', '.join(FORMATS)}")
    if not e.export_base:
        raise ConfigError("export.export_base is not set: pass --export_base=DIR")
    common.require_classifier_run(config.model_dir)
    started = common.Run(config, config.model_dir, None, config.precision)
    model = common.load_model(started.path(common.MODEL_FILE))
    class_names = tfm_data.load_label_names(started.path(common.LABELS_FILE))
    if format == "huggingface":
        version_dir = export_huggingface(started, model, class_names)
    elif config.model.kind == "mlp":
        version_dir = export_mlp(started, model, class_names)
    else:
        version_dir = export_text(started, model, class_names)
    print(f"exported {config.model_dir} → {version_dir}", flush=True)
    return version_dir


def _verify_count(config: ExperimentConfig) -> int:
    return config.export.verify_examples if config.export.verify else 0


def _verification_examples(config: ExperimentConfig):
    """The first `export.verify_examples` held-out examples (test, else validation) an export is
    verified on, or None when it is not verified on text."""
    n = _verify_count(config)
    if not n:
        return None
    held_out = common.load_text_splits(config)
    examples = held_out.test or held_out.validation
    return examples.subset(range(min(n, len(examples))))


def export_text(started: common.Run, model, class_names) -> str:
    config, d = started.config, started.config.data
    examples = _verification_examples(config)
    verify_texts = examples.texts if examples else None
    verify_pairs = examples.text_pairs if (examples and examples.text_pairs) else None
    return tfm_export.export_text_classifier(
        model, vocab_path=started.path(common.VOCAB_FILE), sequence_length=d.sequence_length,
        lowercase=d.lowercase, class_names=class_names, export_base=config.export.export_base,
        model_name=config.export.model_name, pair=bool(d.text_pair_column), verify_texts=verify_texts,
        verify_text_pairs=verify_pairs, verify=config.export.verify,
        verify_atol=config.export.verify_atol, **common.truncation_args(config))


def export_mlp(started: common.Run, model, class_names) -> str:
    from tfmodels.tasks import train as train_task
    config = started.config
    normalizer = tfm_data.Normalizer.load(started.path(common.NORMALIZER_FILE))
    splits = train_task.load_feature_splits(config)
    examples = splits.test or splits.validation
    n = _verify_count(config)
    return tfm_export.export_mlp(
        model, mean=normalizer.mean, std=normalizer.std, class_names=class_names,
        export_base=config.export.export_base, model_name=config.export.model_name,
        verify_features=examples.features[:n] if n else None, verify=config.export.verify,
        verify_atol=config.export.verify_atol)


def export_huggingface(started: common.Run, model, class_names) -> str:
    config = started.config
    if config.model.kind != "bert":
        raise ConfigError(f"--format=huggingface exports BERT models; this run's model.kind is "
                          f"{config.model.kind!r} (use --format=saved_model)")
    examples = _verification_examples(config)
    return tfm_huggingface.export_huggingface(
        model, vocab_path=started.path(common.VOCAB_FILE),
        output_dir=os.path.join(config.export.export_base, config.export.model_name),
        lowercase=config.data.lowercase, class_names=class_names, verify=config.export.verify,
        verify_atol=config.export.verify_atol, training_truncation=_head_tail_record(config),
        sequence_length=config.data.sequence_length,
        verify_texts=examples.texts if examples else None)


def _head_tail_record(config: ExperimentConfig) -> dict | None:
    """The fine-tuning's head + tail cut of long texts, for exports whose tokenizer cannot apply it."""
    head = truncation.resolve_head_tokens(config.data.truncation, config.data.sequence_length,
                                          config.data.head_tokens)
    if head is None:
        return None
    return {"truncation": config.data.truncation, "head_tokens": head,
            "sequence_length": config.data.sequence_length}
