"""Metrics of a trained model directory on a split of its data or on a labelled file."""

from __future__ import annotations

from tfmodels import data as tfm_data
from tfmodels.config import ExperimentConfig
from tfmodels.tasks import common, train as train_task
from tfmodels.training.metrics import per_class_metrics

load_run_config = common.load_run_config


def run(config: ExperimentConfig, split: str = "test", input_file: str | None = None) -> dict:
    """Evaluates `<model_dir>/model.keras`; writes `metrics_<split or file name>.json`.

    The metrics are those of `Trainer.evaluate` plus `per_class`: {label: {precision, recall,
    f1, support}}, also printed as a table.

    Args:
        config: ExperimentConfig. Usually the model directory's own config.yaml.
        split: str. train, validation or test of the config's data. Defaults to "test".
        input_file: str | None. A labelled source instead (see input_file_examples).
    """
    common.require_classifier_run(config.model_dir)
    started = common.Run(config, config.model_dir, None, config.precision)
    label_names = tfm_data.load_label_names(started.path(common.LABELS_FILE))
    dataset = evaluation_dataset(started, label_names, split, input_file)
    with common.tfm_training.get_strategy("default").scope():
        model = common.load_model(started.path(common.MODEL_FILE))
        trainer = common.tfm_training.Trainer(model, objective="classification")
    metrics = trainer.evaluate(dataset)
    metrics["per_class"] = per_class_metrics(metrics["confusion_matrix"], label_names)
    name = input_file or split
    printable = {k: (round(float(v), 4) if not hasattr(v, "tolist") or v.ndim == 0 else v.tolist())
                 for k, v in metrics.items() if k != "per_class"}
    print(f"{name}: {printable}", flush=True)
    print(per_class_table(metrics["per_class"]), flush=True)
    common.write_json(started.path(f"metrics_{_slug(name)}.json"), metrics)
    return metrics


def per_class_table(per_class: dict) -> str:
    """Formats {label: {precision, recall, f1, support}} as an aligned text table."""
    width = max(len("label"), *(len(label) for label in per_class))
    lines = [f"{'label':<{width}}  precision  recall      f1  support"]
    for label, m in per_class.items():
        lines.append(f"{label:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}"
                     f"  {m['support']:>7}")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.rsplit("/", 1)[-1])


def input_file_examples(config: ExperimentConfig, input_file: str, label_names):
    """Labelled examples of `input_file`, read like the config's training data, with the run's labels.

    Args:
        config: ExperimentConfig. Its data section names the columns and the bad-record policy.
        input_file: str. Any source training accepts: a .csv/.tsv/.tab/.jsonl file, a class
            directory or a `tfds:` source for text models; a numeric file or `tfds:` source for MLPs.
        label_names: list[str]. The trained model's label vocabulary (labels.json).
    """
    d = config.data
    if config.model.kind == "mlp":
        return tfm_data.load_feature_splits(input_file, label_column=d.label_column, label_names=label_names,
                                            on_bad_record=d.on_bad_record, validation_fraction=0).train
    return tfm_data.load_text_classification(
        input_file, text_column=d.text_column, text_pair_column=d.text_pair_column,
        label_column=d.label_column, label_names=label_names, on_bad_record=d.on_bad_record,
        validation_fraction=0).train


def evaluation_dataset(started: common.Run, label_names, split: str, input_file: str | None):
    config, d = started.config, started.config.data
    if config.model.kind == "mlp":
        if input_file:
            examples = input_file_examples(config, input_file, label_names)
        else:
            examples = split_examples(train_task.load_feature_splits(config), split)
        normalizer = tfm_data.Normalizer.load(started.path(common.NORMALIZER_FILE))
        return tfm_data.features_dataset(normalizer(examples.features), examples.labels, d.eval_batch_size,
                                         shuffle=False)
    if input_file:
        examples = input_file_examples(config, input_file, label_names)
    else:
        examples = split_examples(common.load_classifier_splits(config), split)
    tokenizer = tfm_data.make_tokenizer(started.path(common.VOCAB_FILE), lowercase=d.lowercase)
    return common.evaluation_text_dataset(config, examples, tokenizer)


def split_examples(splits, split: str):
    """The examples of `split`, or a ConfigError naming the splits the run's data has."""
    present = splits.splits()
    if split not in present:
        raise common.ConfigError(f"--split={split}: this run's data has no {split} split; available: "
                                 f"{', '.join(present)} (or --input_file=FILE)")
    return present[split]
