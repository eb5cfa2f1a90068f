"""Pieces shared by the task functions: run set-up, data, vocabulary, models, trainers, artifacts.

A trained model directory holds:
    config.yaml      the resolved experiment, written before the first step
    model.keras      the trained classifier (best validation checkpoint when one was chosen)
    vocab.txt        the WordPiece vocabulary (text models)
    labels.json      the label vocabulary, from the training split
    normalizer.json  feature mean/std of the training split (MLP)
    metrics.json     validation/test metrics and every validation evaluation of the training
    checkpoints/     training state for resuming; best/ the best checkpoint; logs/ TensorBoard
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels import training as tfm_training
from tfmodels.data import class_weights as class_weights_lib
from tfmodels.tasks import failed_starts, resume_check
from tfmodels.config import (
    ConfigError, ExperimentConfig, TrainerConfig, check_model_dir, load_run_config, save_config)

log = logging.getLogger("tfmodels")

MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.json"
NORMALIZER_FILE = "normalizer.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.json"
ENCODER_DIR = "encoder"  # a pretraining run's encoder, what fine-tuning loads
HEAD_VARIABLES = "logits"  # the classifier head's Dense layer (models name it so)
# What a run writes before its first step: a directory holding nothing else has trained nothing.
SETUP_FILES = frozenset({resume_check.CONFIG_FILE, resume_check.KIND_FILE, resume_check.ENCODER_FINGERPRINT_FILE,
                         VOCAB_FILE, LABELS_FILE, NORMALIZER_FILE})


@dataclasses.dataclass
class Run:
    """A started run: resolved config, directory, strategy and precision.

    `model_dir` is the run directory every process reads (and resumes from). Only the chief writes
    it: `output_dir` is `model_dir` on the chief and a private temporary directory on the other
    workers of a multi-worker job, so artifacts written through `path()` never collide on a shared
    filesystem.
    """

    config: ExperimentConfig
    model_dir: str
    strategy: tf.distribute.Strategy | None
    precision: str
    output_dir: str | None = None

    def __post_init__(self):
        self.output_dir = self.output_dir or self.model_dir

    def path(self, *parts: str) -> str:
        """A path under this process's output directory."""
        return os.path.join(self.output_dir, *parts)

    def stage_dir(self, name: str) -> str:
        """The run directory of a sub-stage (e.g. the pipeline's `pretrain`), under `model_dir`."""
        return os.path.join(self.model_dir, name)


def start_run(config: ExperimentConfig, model_dir: str | None = None, kind: str | None = None) -> Run:
    """Seeds, sets op determinism, precision and strategy, creates the run directory and writes
    config.yaml, after refusing to resume a run trained with a different config
    (`resume_check.check_resume`).

    The strategy is the process's one strategy of that name (`get_strategy` creates it once), so
    stages started one after another in one process share their variables' strategy.

    Args:
        config: ExperimentConfig. The resolved experiment.
        model_dir: str | None. Overrides `config.model_dir` (pipeline stages use sub-directories).
        kind: str | None. What the run is (`resume_check.KINDS`: which keys it reads); None for a
            caller that trains nothing, so resumes nothing.
    """
    model_dir = model_dir or config.model_dir
    check_model_dir(model_dir)
    if kind is not None:
        resume_check.check_resume(config, model_dir, kind)
    keras.utils.set_random_seed(config.seed)
    tfm_training.apply_op_determinism(config.deterministic)
    precision = tfm_training.apply_precision(config.precision, model_kind=config.model.kind)
    strategy = tfm_training.get_strategy(config.strategy)
    output_dir = tfm_training.writable_dir(model_dir, strategy)
    failed_starts.record(output_dir, SETUP_FILES)
    os.makedirs(output_dir, exist_ok=True)
    save_config(dataclasses.replace(config, model_dir=model_dir), os.path.join(output_dir, resume_check.CONFIG_FILE))
    if kind is not None:
        resume_check.record_kind(output_dir, kind)
    if kind == "finetune":
        resume_check.record_encoder(output_dir, config)
    return Run(config, model_dir, strategy, precision, output_dir)


def write_json(path: str, value) -> None:
    """Writes JSON atomically (a crash never leaves half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def banner(title: str) -> None:
    line = "=" * 78
    print(f"\n{line}\n{title}\n{line}", flush=True)


class Stopwatch:
    """Measures the wall time of named stages, and of everything since it was made (`total`):
    stages that ran side by side overlap, so their sum may exceed it."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    def total(self) -> float:
        return time.perf_counter() - self.started

    def record(self, name: str, seconds: float, finished: bool = True) -> None:
        """Adds `seconds` to stage `name` (a stage may run once per seed); prints them when it finished."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if finished:
            print(f"[{name}] done in {seconds:.1f} s", flush=True)

    def stage(self, name: str):
        watch = self

        class _Stage:
            def __enter__(self):
                self.start = time.perf_counter()
                return self

            def __exit__(self, *exc):
                watch.record(name, time.perf_counter() - self.start, finished=exc[0] is None)

        return _Stage()


# ---------------------------------------------------------------------------------------------
# Data


def split_seed(config: ExperimentConfig) -> int:
    """The seed of the train/validation/test split: `data.split_seed`, else the run's `seed`."""
    return config.seed if config.data.split_seed is None else config.data.split_seed


def load_text_splits(config: ExperimentConfig):
    """Reads the text-classification splits named by `config.data` (with its bad-record policy)."""
    d = config.data
    splits = tfm_data.load_text_classification(
        train=d.train, validation=d.validation, test=d.test, text_column=d.text_column,
        text_pair_column=d.text_pair_column, label_column=d.label_column,
        on_bad_record=d.on_bad_record, seed=split_seed(config))
    print_skipped_records(splits.report)
    if splits.num_labels == 1:
        raise tfm_data.DataError(d.train, None, f"every record has the label {splits.label_names[0]!r}",
                                 "at least 2 labels, since a classifier tells labels apart")
    if d.limit:
        for name, examples in splits.splits().items():
            setattr(splits, name, examples.subset(range(min(d.limit, len(examples)))))
    return splits


def load_classifier_splits(config: ExperimentConfig):
    """The splits a classifier trains on: `load_text_splits` cut by `with_train_sample`."""
    return with_train_sample(config, load_text_splits(config))


def with_train_sample(config: ExperimentConfig, splits):
    """`splits` (a copy) with the training split cut to a stratified sample of `data.train_examples`
    labelled examples drawn with the run's `seed` (`tfm_data.stratified_sample`: a smaller sample of a
    seed is part of every larger one); unchanged without `data.train_examples`. Validation and test
    stay whole; pretraining reads the whole training split's texts."""
    wanted = config.data.train_examples
    if not wanted:
        return splits
    if wanted > len(splits.train):
        raise ConfigError(f"data.train_examples={wanted} is more than the {len(splits.train):,} examples of the "
                          f"training split of {config.data.train}; allowed: 1 to {len(splits.train)}")
    sample = tfm_data.stratified_sample(splits.train.labels, wanted, config.seed)
    return dataclasses.replace(splits, train=splits.train.subset(sample))


def print_skipped_records(report) -> None:
    """Prints what `data.on_bad_record: skip` skipped, per reason with examples; nothing when none was."""
    if report is not None and report.skipped:
        print(report, flush=True)


def read_corpus(config: ExperimentConfig):
    """The pretraining corpus named by `data.corpus` (first `data.limit` lines when set)."""
    corpus = tfm_data.read_corpus(config.data.corpus, on_bad_record=config.data.on_bad_record,
                                  seed=split_seed(config))  # a corpus may hold a training split's texts
    print_skipped_records(corpus.report)
    if config.data.limit:
        n = config.data.limit
        corpus = dataclasses.replace(corpus, texts=corpus.texts[:n], document_ids=corpus.document_ids[:n],
                                     part_ids=corpus.part_ids[:n])
    return corpus


def ensure_vocab(config: ExperimentConfig, model_dir: str, texts) -> str:
    """Returns the run's vocab.txt: copied from `data.vocab_path`, or built from `texts`.

    A built vocab.txt is kept only by a run that resumes (one with a checkpoint): one left by a
    start that failed before its first checkpoint may come from other data or settings.
    """
    target = os.path.join(model_dir, VOCAB_FILE)
    if config.data.vocab_path:
        tokens = tfm_data.load_vocab(config.data.vocab_path)
        if os.path.abspath(config.data.vocab_path) != os.path.abspath(target):
            tfm_data.save_vocab(tokens, target)
        return target
    if not (os.path.isfile(target) and resume_check.holds_checkpoint(model_dir)):
        tfm_data.build_wordpiece_vocab(texts, vocab_size=config.data.vocab_size,
                                       lowercase=config.data.lowercase, output_path=target)
    return target


def text_datasets(config: ExperimentConfig, splits, vocab_path: str, lowercase: bool):
    """Tokenized train (shuffled, repeating per epoch) and evaluation datasets for each split.

    The training batches always come in the seeded order: `deterministic` is about TensorFlow's
    ops, not the data order. (A parallel map allowed to run out of order swapped 2–3 of an epoch's
    434 batches when other work shared the CPU, so a run's result depended on the machine's load.)
    """
    d = config.data
    tokenizer = tfm_data.make_tokenizer(vocab_path, lowercase=lowercase)
    train = tfm_data.classification_dataset(
        splits.train, tokenizer, d.sequence_length, batch_size(config, config.trainer), shuffle=True, seed=config.seed,
        cache=d.cache, dynamic_padding=d.dynamic_padding, length_buckets=d.length_buckets, deterministic=True,
        input_mask_rate=d.input_mask_rate, crop_rate=d.crop_rate, crop_min_tokens=d.crop_min_tokens,
        **truncation_args(config))
    train = class_weights_lib.weight_by_class(train, class_weights(config, splits), splits.label_names)
    evaluation = {name: evaluation_text_dataset(config, examples, tokenizer)
                  for name, examples in evaluation_splits(splits).items()}
    return train, evaluation


def evaluation_splits(splits) -> dict:
    """{"validation": examples, "test": examples} for those of the two splits that hold examples."""
    return {name: examples for name, examples in (("validation", splits.validation), ("test", splits.test))
            if examples is not None and len(examples)}


def evaluation_text_dataset(config: ExperimentConfig, examples, tokenizer):
    """Batches of `examples` for evaluation, in `evaluation_order`."""
    d = config.data
    return tfm_data.classification_dataset(
        examples.subset(evaluation_order(config, examples)), tokenizer, d.sequence_length, d.eval_batch_size,
        shuffle=False, cache=d.cache, dynamic_padding=d.dynamic_padding, **truncation_args(config))


def evaluation_order(config: ExperimentConfig, examples) -> np.ndarray:
    """The order evaluation batches take `examples` in: from the shortest text to the longest when
    `data.dynamic_padding` is on, so that a batch pads to reviews of similar length (about half the
    evaluation time here); otherwise as given."""
    return examples.shortest_first() if config.data.dynamic_padding else np.arange(len(examples))


def evaluation_orders(config: ExperimentConfig, splits) -> dict[str, np.ndarray]:
    """`evaluation_order` of the validation and test splits that are present."""
    return {name: evaluation_order(config, examples) for name, examples in evaluation_splits(splits).items()}


def truncation_args(config: ExperimentConfig) -> dict:
    """Which tokens of a too-long text the model sees, as the data pipelines and the export take it."""
    return {"truncation": config.data.truncation, "head_tokens": config.data.head_tokens}


def class_weights(config: ExperimentConfig, splits) -> dict[str, float] | None:
    """{label: loss weight} from `data.class_weights` and the training labels; None when unset."""
    return class_weights_lib.resolve_class_weights(config.data.class_weights, splits.train.labels,
                                                   splits.label_names)


def batch_size(config: ExperimentConfig, tc: TrainerConfig) -> int:
    """The stage's global training batch: `<stage>.batch_size`, else `data.batch_size`."""
    return tc.batch_size or config.data.batch_size


def step_plan(config: ExperimentConfig, tc: TrainerConfig, num_examples: int) -> tfm_training.StepPlan:
    """The stage's length in optimizer steps, by the one rule of tfmodels/training/steps.py.

    An epoch is one pass over `num_examples` in batches of the stage's batch size, i.e.
    batches // grad_accum_steps optimizer steps (or `steps_per_epoch`); the run is `steps`, else
    `epochs` of them. The learning-rate schedule and the Trainer both use this plan.
    """
    if not tc.steps and not tc.epochs:
        raise ConfigError("set trainer.epochs or trainer.steps (the number of epochs or optimizer steps)")
    per_epoch = tc.steps_per_epoch or tfm_training.optimizer_steps_per_epoch(
        tfm_training.batches(num_examples, batch_size(config, tc)), tc.grad_accum_steps)
    return tfm_training.plan_steps(tc.epochs, tc.steps, per_epoch)


# ---------------------------------------------------------------------------------------------
# Models


def encoder_overrides(config: ExperimentConfig) -> dict:
    m = config.model
    return {k: v for k, v in dict(num_layers=m.num_layers, hidden_dim=m.hidden_dim, num_heads=m.num_heads,
                                   intermediate_dim=m.intermediate_dim).items() if v is not None}


def build_encoder(config: ExperimentConfig, vocabulary_size: int):
    m = config.model
    lengths = {"data.sequence_length": config.data.sequence_length,
               "data.pretrain_sequence_length": config.data.pretrain_sequence_length,
               "pretrain.in_domain_sequence_length": config.pretrain.in_domain_sequence_length}
    for key, length in lengths.items():
        if length is not None and length > m.max_sequence_length:
            raise ConfigError(f"{key}={length} exceeds model.max_sequence_length={m.max_sequence_length}; "
                              f"allowed: {key} <= model.max_sequence_length")
    return tfm_models.build_bert_encoder(m.variant, vocabulary_size=vocabulary_size,
                                         max_sequence_length=m.max_sequence_length, dropout=m.dropout,
                                         **encoder_overrides(config))


def build_text_classifier(config: ExperimentConfig, vocabulary_size: int, num_classes: int, encoder=None):
    """A BERT or LSTM classifier per `config.model` (call inside the strategy scope)."""
    m = config.model
    if m.kind == "lstm":
        return tfm_models.build_lstm_classifier(vocabulary_size, num_classes, embedding_dim=m.embedding_dim,
                                                units=m.lstm_units, bidirectional=m.bidirectional,
                                                dropout=m.dropout, pooling=m.lstm_pooling)
    if m.kind != "bert":
        raise ConfigError(f"model.kind={m.kind!r} is not a text model; choose bert or lstm")
    encoder = encoder or build_encoder(config, vocabulary_size)
    return tfm_models.build_bert_classifier(encoder, num_classes, dropout=m.dropout, pooling=m.pooling)


def save_model(model: keras.Model, path: str) -> None:
    """Saves a `.keras` file atomically."""
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def require_classifier_run(model_dir: str) -> None:
    """Raises a ConfigError naming what `model_dir` holds when its recorded kind is not a trained
    classifier (what evaluate and export read)."""
    kind = resume_check.recorded_kind(model_dir)
    if kind == "pretrain":
        raise ConfigError(f"--model_dir={model_dir} holds a pretraining run, not a classifier; allowed: a train "
                          f"or finetune run (to fine-tune its encoder: --override=finetune.encoder="
                          f"{os.path.join(model_dir, ENCODER_DIR)})")
    if kind == "pipeline":
        raise ConfigError(f"--model_dir={model_dir} holds a pipeline run; allowed: one of its classifier stages, "
                          f"such as {os.path.join(model_dir, 'finetune')}")


def load_model(path: str) -> keras.Model:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no trained model found (expected {MODEL_FILE} from train/finetune)")
    return keras.saving.load_model(path, safe_mode=True)


# ---------------------------------------------------------------------------------------------
# Training


def make_optimizer(tc: TrainerConfig, total: int, learning_rate: float | None = None, model=None):
    """The stage's optimizer: `TrainerConfig.optimizer_args` states how the config maps to it.

    `model` is the model it trains; `trainer.layer_decay` other than 1.0 needs it (a BERT model).
    """
    layers = None
    if tc.layer_decay != 1.0:
        try:
            layers = tfm_models.layer_decay_multipliers(model, tc.layer_decay)
        except (ValueError, AttributeError) as error:
            raise ConfigError(f"trainer.layer_decay={tc.layer_decay}: {error}; allowed for this model: 1.0") from None
    return tfm_training.build_optimizer(**tc.optimizer_args(total, learning_rate, head_variables=HEAD_VARIABLES,
                                                            layer_multipliers=layers))


def make_trainer(run: Run, tc: TrainerConfig, model, optimizer, model_dir: str, objective="classification",
                 section: str | None = None, previous_phase=None):
    """The stage's Trainer: `TrainerConfig.trainer_args` states how the config maps to it.

    `objective` is a name in `tfmodels.choices.OBJECTIVES` or an Objective instance (e.g. `Electra`).

    `recompute` is a runtime setting of the model (activation recomputation), not a Trainer argument.
    `section` names `tc` in errors ("trainer" or "pretrain"; found by identity when not given).
    `previous_phase` is the Trainer of an earlier phase this one continues (steps, best model, patience).
    """
    section = section or ("pretrain" if tc is run.config.pretrain else "trainer")
    try:
        tfm_models.set_recompute(model, tc.recompute)
    except ValueError as error:
        raise ConfigError(f"{section}.recompute: {error}") from None
    return tfm_training.Trainer(model, optimizer, objective=objective, strategy=run.strategy, model_dir=model_dir,
                                seed=run.config.seed, previous_phase=previous_phase, **tc.trainer_args())


def fit(trainer, plan: tfm_training.StepPlan, train_data, validation_data, callbacks=None):
    """Runs the Trainer for the stage's plan (see `step_plan`)."""
    return trainer.fit(train_data, validation_data=validation_data, epochs=plan.epochs, steps=plan.total_steps,
                       steps_per_epoch=plan.steps_per_epoch, callbacks=callbacks)


def run_metrics(metrics: dict, evaluations: list, class_weights: dict[str, float] | None = None) -> dict:
    """The metrics.json content: metrics per split, every validation evaluation of the training
    ({"step", "epoch", "val_*"}, see Trainer.fit), and the training loss's `class_weights` when set."""
    content = {**metrics, "evaluations": evaluations}
    return content if class_weights is None else {**content, "class_weights": class_weights}


def tokens_per_second(history: dict) -> float | None:
    """Mean training tokens/s over the epochs of a fit history; None when no step ran (a run
    resumed from its last checkpoint)."""
    values = history.get("tokens_per_second")
    return float(sum(values) / len(values)) if values else None


def write_predictions(run: Run, trainer, datasets: dict, orders: dict | None = None) -> None:
    """predictions.json: {split: [predicted class id of every example, in the split's own order]}.

    Args:
        datasets: dict. {split name: evaluation dataset}.
        orders: dict | None. {split name: the order the dataset takes the split's examples in
            (`evaluation_orders`)}; None when the datasets keep the splits' order.
    """
    content = {}
    for name, dataset in datasets.items():
        predicted = np.argmax(trainer.predict(dataset), axis=-1)
        in_split_order = np.empty_like(predicted)
        in_split_order[(orders or {}).get(name, np.arange(len(predicted)))] = predicted
        content[name] = in_split_order.tolist()
    write_json(run.path(PREDICTIONS_FILE), content)


def read_predictions(output_dir: str) -> dict[str, np.ndarray]:
    """A run's predictions.json (`write_predictions`) as {split: int array}."""
    with tf.io.gfile.GFile(os.path.join(output_dir, PREDICTIONS_FILE)) as f:
        return {name: np.asarray(values, dtype=np.int64) for name, values in json.load(f).items()}


def evaluate_splits(trainer, datasets: dict) -> dict:
    """Metrics per split name, printed as one line each."""
    results = {}
    for name, dataset in datasets.items():
        results[name] = trainer.evaluate(dataset)
        printable = {k: round(float(v), 4) for k, v in results[name].items() if np.ndim(v) == 0}
        print(f"{name}: {printable}", flush=True)
    return results
