"""Fine-tunes a classifier on a pretrained encoder (BERT) or trunk (MLP)."""

from __future__ import annotations

import dataclasses
import os

import keras

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels.config import ConfigError, ExperimentConfig
from tfmodels.tasks import common, failed_starts, train as train_task

FROZEN_PHASE_DIR = "frozen_phase"
MLP_MODES = ("full", "frozen")  # an MLP's trunk trains with its new head, or stays frozen


@failed_starts.removed_on_error()
def run(config: ExperimentConfig, model_dir: str | None = None) -> dict:
    """Loads `finetune.encoder`, adapts it per `finetune.mode`, trains, evaluates and saves.

    Returns:
        dict with `metrics` (per split), `history` (per phase), `evaluations` (every validation
        evaluation: {"step", "epoch", "val_*"}, steps and epochs continuous across the phases of
        frozen_then_full; also in metrics.json), `param_counts` and `model_dir`.
    """
    if not config.finetune.encoder:
        raise ConfigError("finetune.encoder is not set: pass --override=finetune.encoder=PATH "
                          "(a pretrain run's encoder/ dir, a keras-hub preset dir or a Hugging Face BERT dir)")
    if config.model.kind == "mlp" and config.finetune.mode not in MLP_MODES:
        raise ConfigError(f"finetune.mode={config.finetune.mode!r} needs a BERT model; allowed for "
                          f"model.kind=mlp: {', '.join(MLP_MODES)}")
    started = common.start_run(config, model_dir, kind="finetune")
    if config.model.kind == "mlp":
        return finetune_mlp(started)
    return finetune_bert(started)


def finetune_mlp(started: common.Run) -> dict:
    """Freezes a trained MLP's trunk and trains a new head for this config's data."""
    config = started.config
    source = config.finetune.encoder
    source_file = source if source.endswith(".keras") else os.path.join(source, common.MODEL_FILE)
    splits = train_task.load_feature_splits(config)
    num_classes = config.finetune.num_classes
    if num_classes is not None and num_classes < splits.num_labels:
        raise ConfigError(f"finetune.num_classes={num_classes} is below the {splits.num_labels} labels of "
                          f"{config.data.train}; allowed: >= {splits.num_labels} or null (from the data)")
    with started.strategy.scope():
        base = common.load_model(source_file)
        inputs = sorted(base.input) if isinstance(base.input, dict) else []
        if inputs != ["features"]:
            raise ConfigError(f"finetune.encoder={source!r} is not an MLP run (its model takes "
                              f"{', '.join(inputs) or 'one unnamed input'}); allowed for model.kind=mlp: an MLP "
                              "run's directory or its model.keras")
        model = tfm_models.replace_head(base, config.finetune.num_classes or splits.num_labels)
        counts = tfm_models.freeze_base(model) if config.finetune.mode == "frozen" else tfm_models.count_params(model)
    print(f"fine-tuning {source_file}: {counts}", flush=True)
    result = train_task.train_mlp(started, model=model)
    result["param_counts"] = counts
    return result


def finetune_bert(started: common.Run) -> dict:
    config, ft = started.config, started.config.finetune
    with started.strategy.scope():
        loaded = _load_encoder(ft.encoder)
        encoder = encoder_with_config_dropout(loaded.encoder, config.model.dropout)
    if loaded.vocab_path is None:
        raise common.ConfigError(f"finetune.encoder={ft.encoder!r} holds no vocab.txt; allowed: an encoder "
                                 "with the vocabulary it was trained with beside it")
    _check_against_encoder(config, encoder)
    config = _with_vocab(config, loaded.vocab_path, loaded.lowercase)
    started = common.start_run(config, started.model_dir)  # records the encoder's vocabulary settings
    splits = common.load_classifier_splits(config)
    tfm_data.save_label_names(splits.label_names, started.path(common.LABELS_FILE))
    vocab_path = common.ensure_vocab(config, started.output_dir, None)
    train, evaluation = common.text_datasets(config, splits, vocab_path, config.data.lowercase)
    plan = common.step_plan(config, config.trainer, len(splits.train))
    with started.strategy.scope():
        model = common.build_text_classifier(config, None, splits.num_labels, encoder=encoder)
    history, frozen_phase = {}, None
    if ft.mode == "frozen_then_full" and ft.frozen_epochs > 0:
        frozen_phase, history["frozen"] = run_frozen_phase(started, model, train, evaluation, plan.steps_per_epoch)
    counts, callbacks = adapt_model(started, model)
    print(f"fine-tuning mode {ft.mode}: {counts}", flush=True)
    trainer, history["main"] = fit_phase(started, model, train, evaluation, plan, callbacks, frozen_phase)
    trainer.restore_best()  # the best over both phases of frozen_then_full
    metrics = common.evaluate_splits(trainer, evaluation)
    common.write_predictions(started, trainer, evaluation, common.evaluation_orders(config, splits))
    if ft.mode == "lora":
        tfm_models.merge_lora(model)
    common.save_model(model, started.path(common.MODEL_FILE))
    evaluations = history["main"]["evaluations"]
    common.write_json(started.path(common.METRICS_FILE),
                      common.run_metrics(metrics, evaluations, common.class_weights(config, splits)))
    return {"metrics": metrics, "history": history, "evaluations": evaluations, "param_counts": counts,
            "model_dir": started.model_dir, "output_dir": started.output_dir,
            "tokens_per_second": common.tokens_per_second(history["main"])}


def _load_encoder(path: str):
    """`models.load_encoder` of `finetune.encoder`; a path it cannot load is named by its key, and a
    pretraining run directory by the encoder directory inside it."""
    try:
        return tfm_models.load_encoder(path)
    except ValueError as error:
        inside = os.path.join(path, common.ENCODER_DIR)
        hint = (f"; a pretraining run keeps its encoder in {inside}: --override=finetune.encoder={inside}"
                if os.path.isdir(inside) else "")
        raise ConfigError(f"finetune.encoder={path!r}: {error}{hint}") from None


def _check_against_encoder(config: ExperimentConfig, encoder) -> None:
    """Refuses `data.sequence_length` and `finetune.top_k` values the loaded encoder cannot take,
    naming the config key, before any data is read."""
    ft = config.finetune
    try:
        tfm_models.check_sequence_length(encoder, config.data.sequence_length)
    except ValueError:
        raise ConfigError(
            f"data.sequence_length={config.data.sequence_length} is invalid for finetune.encoder={ft.encoder!r}; "
            f"allowed: 1..{encoder.max_sequence_length} (its max_sequence_length)") from None
    if ft.mode != "top_k":
        return
    try:
        tfm_models.check_top_k(encoder, ft.top_k)
    except ValueError:
        raise ConfigError(f"finetune.top_k={ft.top_k} is invalid: finetune.encoder={ft.encoder!r} has "
                          f"{encoder.num_layers} layers; allowed: 0..{encoder.num_layers}") from None


def encoder_with_config_dropout(encoder, dropout: float):
    """The loaded encoder with `model.dropout` inside it (it was saved with its own rate)."""
    if encoder.dropout != dropout:
        print(f"encoder dropout: {encoder.dropout} as saved, {dropout} for fine-tuning (model.dropout)",
              flush=True)
    return tfm_models.with_encoder_dropout(encoder, dropout)


def _with_vocab(config: ExperimentConfig, vocab_path: str, lowercase: bool | None) -> ExperimentConfig:
    lowercase = config.data.lowercase if lowercase is None else lowercase
    return dataclasses.replace(config, data=dataclasses.replace(config.data, vocab_path=vocab_path,
                                                                lowercase=lowercase))


def adapt_model(started: common.Run, model):
    """Sets trainability per finetune.mode; returns the parameter counts and callbacks."""
    ft = started.config.finetune
    with started.strategy.scope():
        if ft.mode in ("full", "frozen_then_full"):
            tfm_models.unfreeze_all(model)
            return tfm_models.count_params(model), []
        if ft.mode == "frozen":
            return tfm_models.freeze_base(model), []
        if ft.mode == "top_k":
            return tfm_models.unfreeze_top_k(model, ft.top_k), []
        if ft.mode == "lora":
            return tfm_models.apply_lora(model, ft.lora_rank), []
        unfreezer = tfm_models.GradualUnfreezer(model, every=ft.unfreeze_every_epochs)
        unfreezer.update(0)
        return tfm_models.count_params(model), [GradualUnfreezing(unfreezer)]


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes one more encoder layer every N epochs; the Trainer re-traces its step on change.

    The stage follows the epochs done when an epoch begins, so a run resumed part-way through
    trains the layers the uninterrupted run trained at that point.
    """

    def __init__(self, unfreezer):
        super().__init__()
        self.unfreezer = unfreezer

    def on_epoch_begin(self, epoch, logs=None):
        if self.unfreezer.update(epoch):
            print(f"gradual unfreezing after epoch {epoch}: {tfm_models.count_params(self.model)}", flush=True)


def run_frozen_phase(started: common.Run, model, train, evaluation, per_epoch: int):
    """Warms up the new head with the encoder frozen, at `finetune.frozen_learning_rate`.

    Its evaluations count towards the best model and the patience of the full phase, which
    continues it (`Trainer(previous_phase=...)`); only the full phase stops early.

    Args:
        per_epoch: int. Optimizer steps per epoch (the main phase's).

    Returns:
        (Trainer, dict): the phase's Trainer and its fit history.
    """
    ft, tc = started.config.finetune, started.config.trainer
    with started.strategy.scope():
        counts = tfm_models.freeze_base(model)
        print(f"frozen-encoder warm-up for {ft.frozen_epochs} epoch(s): {counts}", flush=True)
        total = ft.frozen_epochs * per_epoch
        optimizer = common.make_optimizer(tc, total, learning_rate=ft.frozen_learning_rate, model=model)
        no_stopping = dataclasses.replace(tc, early_stopping_patience=None)
        trainer = common.make_trainer(started, no_stopping, model, optimizer, started.stage_dir(FROZEN_PHASE_DIR))
    return trainer, trainer.fit(train, validation_data=evaluation.get("validation"), epochs=ft.frozen_epochs,
                                steps_per_epoch=per_epoch)


def fit_phase(started: common.Run, model, train, evaluation, plan, callbacks, previous_phase=None):
    """Trains `model` for the stage's plan; `previous_phase` is the frozen phase's Trainer it continues."""
    tc = started.config.trainer
    with started.strategy.scope():
        optimizer = common.make_optimizer(tc, plan.total_steps, model=model)
        trainer = common.make_trainer(started, tc, model, optimizer, started.model_dir, previous_phase=previous_phase)
    return trainer, common.fit(trainer, plan, train, evaluation.get("validation"), callbacks)
