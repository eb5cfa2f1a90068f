"""Trains a classifier from scratch: an MLP on features, or an LSTM/BERT on texts."""

from __future__ import annotations

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels.config import ExperimentConfig
from tfmodels.data import class_weights as class_weights_lib
from tfmodels.tasks import common, failed_starts


@failed_starts.removed_on_error()
def run(config: ExperimentConfig) -> dict:
    """Trains per `config`, evaluates on validation and test, saves the model.

    Returns:
        dict with `history` (per-epoch logs and `evaluations`, every validation evaluation with its
        optimizer step; also at the top level as `evaluations`, as finetune.run returns it), `metrics` (per
        split), `model_dir` and `output_dir`.
    """
    started = common.start_run(config, kind="train")
    if config.model.kind == "mlp":
        return train_mlp(started)
    return train_text_classifier(started)


def load_feature_splits(config: ExperimentConfig):
    d = config.data
    splits = tfm_data.load_feature_splits(
        train=d.train, validation=d.validation, test=d.test, label_column=d.label_column,
        on_bad_record=d.on_bad_record, seed=common.split_seed(config))
    common.print_skipped_records(splits.report)
    return splits


def feature_datasets(config: ExperimentConfig, splits, normalizer):
    d = config.data
    train = tfm_data.features_dataset(normalizer(splits.train.features), splits.train.labels,
                                      common.batch_size(config, config.trainer),
                                      shuffle=True, seed=config.seed)
    train = class_weights_lib.weight_by_class(train, common.class_weights(config, splits), splits.label_names)
    evaluation = {name: tfm_data.features_dataset(normalizer(ex.features), ex.labels, d.eval_batch_size,
                                                  shuffle=False)
                  for name, ex in common.evaluation_splits(splits).items()}
    return train, evaluation


def train_mlp(started: common.Run, model=None, model_file: str | None = None) -> dict:
    """Trains an MLP (or the given `model`, e.g. a frozen trunk with a new head) on feature data."""
    config = started.config
    splits = load_feature_splits(config)
    normalizer = tfm_data.Normalizer.fit(splits.train.features)
    normalizer.save(started.path(common.NORMALIZER_FILE))
    tfm_data.save_label_names(splits.label_names, started.path(common.LABELS_FILE))
    train, evaluation = feature_datasets(config, splits, normalizer)
    with started.strategy.scope():
        if model is None:
            m = config.model
            model = tfm_models.build_mlp(splits.train.features.shape[1:], m.hidden_units, splits.num_labels,
                                         dropout=m.dropout, activation=m.activation)
        return fit_and_save(started, model, train, evaluation, len(splits.train), model_file,
                            class_weights=common.class_weights(config, splits))


def train_text_classifier(started: common.Run) -> dict:
    config = started.config
    splits = common.load_classifier_splits(config)
    tfm_data.save_label_names(splits.label_names, started.path(common.LABELS_FILE))
    vocab_path = common.ensure_vocab(config, started.output_dir, splits.train.texts)
    vocab_size = len(tfm_data.load_vocab(vocab_path))
    train, evaluation = common.text_datasets(config, splits, vocab_path, config.data.lowercase)
    with started.strategy.scope():
        model = common.build_text_classifier(config, vocab_size, splits.num_labels)
        return fit_and_save(started, model, train, evaluation, len(splits.train),
                            class_weights=common.class_weights(config, splits),
                            orders=common.evaluation_orders(config, splits))


def fit_and_save(started: common.Run, model, train, evaluation: dict, num_train: int,
                 model_file: str | None = None, class_weights: dict | None = None,
                 orders: dict | None = None) -> dict:
    """Fits with the trainer config, restores the best checkpoint, evaluates and saves.

    metrics.json holds the metrics per split, the training's validation `evaluations` (step, epoch,
    val_* values; `history["evaluations"]`) and `class_weights` ({label: weight}, already applied to
    `train`) when set; predictions.json each example's predicted class (`orders`: see
    `common.write_predictions`).
    """
    config, tc = started.config, started.config.trainer
    plan = common.step_plan(config, tc, num_train)
    optimizer = common.make_optimizer(tc, plan.total_steps, model=model)
    trainer = common.make_trainer(started, tc, model, optimizer, started.model_dir)
    history = common.fit(trainer, plan, train, evaluation.get("validation"))
    trainer.restore_best()
    metrics = common.evaluate_splits(trainer, evaluation)
    common.write_predictions(started, trainer, evaluation, orders)
    common.save_model(model, model_file or started.path(common.MODEL_FILE))
    common.write_json(started.path(common.METRICS_FILE),
                      common.run_metrics(metrics, history["evaluations"], class_weights))
    return {"history": history, "metrics": metrics, "evaluations": history["evaluations"],
            "model_dir": started.model_dir, "output_dir": started.output_dir}
