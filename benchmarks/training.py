"""Training throughput of BERT fine-tuning and masked-LM pretraining: tfmodels Trainer vs keras-hub fit.

Both sides train the same `keras_hub.models.BertBackbone` configuration on the same fixed
batch (all positions real tokens, so tokens/step = batch x sequence length) under the same
Keras global dtype policy. The tfmodels side uses the binaries' code path: the optimizer from
`tfmodels.tasks.common.make_optimizer` (AdamW, weight decay 0.01, clipnorm 1.0, linear decay)
and `tfmodels.training.Trainer` with the binaries' arguments, without a model_dir.
"""
from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common

FRAMEWORKS = ("tfmodels", "keras_hub")
TASKS = ("classification", "mlm")
LEARNING_RATE = 1e-4
# Length of the learning-rate schedule of the measured optimizers (longer than any measurement).
PLANNED_STEPS = 10_000


def make_step_timer():
    """A Keras callback recording (batch index, perf_counter) at each train-batch end.

    The Trainer and Keras `fit` both call `on_train_batch_end` once per tf.function call, after
    its results reached the host.
    """

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_train_batch_end(self, batch, logs=None):
            self.events.append((int(batch), time.perf_counter()))

    return StepTimer()


def synthetic_batch(task, batch_size, sequence_length, vocabulary_size, max_predictions=20,
                    seed=0):
    """One fixed batch in the ARCHITECTURE.md format (numpy), every position a real token.

    Args:
        task: str. "classification" or "mlm".
        batch_size: int. B.
        sequence_length: int. L.
        vocabulary_size: int. Token ids are drawn from [5, V).
        max_predictions: int. P for mlm. Defaults to 20.
        seed: int. Defaults to 0.
    """
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocabulary_size, size=(batch_size, sequence_length), dtype=np.int32)
    token_ids[:, 0], token_ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    features = {"token_ids": token_ids,
                "padding_mask": np.ones_like(token_ids),
                "segment_ids": np.zeros_like(token_ids)}
    if task == "classification":
        labels = rng.integers(0, common.NUM_CLASSES, size=(batch_size,), dtype=np.int32)
        return features, labels
    positions = np.sort(np.stack([rng.choice(np.arange(1, sequence_length - 1), max_predictions,
                                             replace=False) for _ in range(batch_size)]), axis=1)
    mask_ids = np.take_along_axis(token_ids, positions, axis=1).astype(np.int32)
    features["token_ids"] = token_ids.copy()
    np.put_along_axis(features["token_ids"], positions, 4, axis=1)  # [MASK]
    features["mask_positions"] = positions.astype(np.int32)
    return features, mask_ids, np.ones(mask_ids.shape, np.float32)


def repeated_dataset(batch):
    """An infinite dataset yielding the same batch (no input cost in the measurement)."""
    return tf.data.Dataset.from_tensors(batch).repeat().prefetch(tf.data.AUTOTUNE)


def _encoder(size, vocabulary_size, sequence_length):
    from tfmodels.models import build_bert_encoder
    return build_bert_encoder("mini", vocabulary_size=vocabulary_size,
                              max_sequence_length=max(512, sequence_length), dropout=0.1,
                              **size.encoder_kwargs())


def tfmodels_optimizer(total_steps, learning_rate=LEARNING_RATE):
    """The optimizer the binaries build from a default TrainerConfig."""
    from tfmodels.config import TrainerConfig
    from tfmodels.tasks.common import make_optimizer
    return make_optimizer(TrainerConfig(learning_rate=learning_rate), total_steps)


def build_trainer(task, size, planned_steps, vocabulary_size, steps_per_execution=1,
                  fast_dropout=None, pooling="cls", length_sorted_parts=1):
    """A tfmodels Trainer as the binaries build it (no model_dir), for the given model size.

    Args:
        task: str. "classification" or "mlm".
        size: common.ModelSize.
        planned_steps: int. Steps of the learning-rate schedule.
        vocabulary_size: int. V of the encoder.
        steps_per_execution: int. Steps per tf.function call. Defaults to 1.
        fast_dropout: bool | None. Trainer(fast_dropout=...); None keeps the binaries' default.
        pooling: str. The classifier's pooling (`build_bert_classifier`). Defaults to "cls".
        length_sorted_parts: int. Trainer(length_sorted_parts=...). Defaults to 1 (whole batches).
    """
    from tfmodels.config import TrainerConfig
    from tfmodels.models import build_bert_classifier, build_bert_pretrainer
    from tfmodels.training import Trainer, get_strategy

    defaults = TrainerConfig()
    strategy = get_strategy("auto")
    with strategy.scope():
        encoder = _encoder(size, vocabulary_size, common.SEQUENCE_LENGTH)
        model = (build_bert_classifier(encoder, common.NUM_CLASSES, dropout=0.1, pooling=pooling)
                 if task == "classification" else build_bert_pretrainer(encoder))
        optimizer = tfmodels_optimizer(planned_steps)
    return Trainer(
        model, optimizer, objective=task, strategy=strategy, model_dir=None,
        label_smoothing=defaults.label_smoothing, grad_accum_steps=defaults.grad_accum_steps,
        checkpoint_every_steps=defaults.checkpoint_every_steps,
        keep_checkpoints=defaults.keep_checkpoints, log_every_steps=defaults.log_every_steps,
        best_metric=None, steps_per_execution=steps_per_execution,
        fast_dropout=defaults.fast_dropout if fast_dropout is None else fast_dropout, seed=0,
        verbose=0, length_sorted_parts=length_sorted_parts)


def build_keras_hub_model(task, size, planned_steps, vocabulary_size, steps_per_execution=1,
                          jit_compile=False):
    """keras-hub BertTextClassifier / BertMaskedLM, compiled for `fit`.

    Same backbone configuration, AdamW with the same learning rate, weight decay and global
    clipnorm as the tfmodels side. `jit_compile=False` is Keras' own default on a CPU-only
    machine.
    """
    import keras_hub

    backbone = _encoder(size, vocabulary_size, common.SEQUENCE_LENGTH)
    optimizer = keras.optimizers.AdamW(
        learning_rate=keras.optimizers.schedules.PolynomialDecay(LEARNING_RATE, planned_steps,
                                                                 0.0),
        weight_decay=0.01, global_clipnorm=1.0, epsilon=1e-6)
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "bias"])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if task == "classification":
        model = keras_hub.models.BertTextClassifier(
            backbone=backbone, num_classes=common.NUM_CLASSES, preprocessor=None, dropout=0.1)
        model.compile(optimizer=optimizer, loss=loss, metrics=["sparse_categorical_accuracy"],
                      jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    else:
        model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
        model.compile(optimizer=optimizer, loss=loss,
                      weighted_metrics=["sparse_categorical_accuracy"],
                      jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


class _FitSide:
    """A model built once and trained a few steps per `run` call (`interleave` side)."""

    def __init__(self, data):
        self.data = data

    def run(self, steps):
        """Trains `steps` more steps; returns per-step seconds between consecutive step ends."""
        timer = make_step_timer()
        self._fit(steps, timer)
        return common.step_times(timer.events, 0)

    def _fit(self, steps, timer):
        raise NotImplementedError


class TrainerSide(_FitSide):
    """A tfmodels Trainer built once and trained a few steps per `run` call.

    Args: as `build_trainer`, without planned_steps (the schedule spans PLANNED_STEPS), plus
    data (tf.data.Dataset).
    """

    framework = "tfmodels"

    def __init__(self, task, size, data, vocabulary_size, steps_per_execution=1,
                 fast_dropout=None, pooling="cls", length_sorted_parts=1):
        super().__init__(data)
        self.trainer = build_trainer(task, size, PLANNED_STEPS, vocabulary_size,
                                     steps_per_execution, fast_dropout, pooling, length_sorted_parts)
        self.steps_done = 0

    def _fit(self, steps, timer):
        # `fit(steps=N)` trains up to global step N within its epochs; the epoch counter is
        # rewound so that each call is one more epoch 0 (the step counter keeps counting).
        self.trainer.epoch.assign(0)
        self.trainer.fit(self.data, steps=self.steps_done + steps, callbacks=[timer])
        self.steps_done += steps


class KerasHubSide(_FitSide):
    """A keras-hub task model trained with `fit`, a few steps per `run` call.

    Args: as `build_keras_hub_model`, plus data (tf.data.Dataset, repeating).
    """

    framework = "keras_hub"

    def __init__(self, task, size, data, vocabulary_size, steps_per_execution=1,
                 jit_compile=False):
        super().__init__(data)
        self.model = build_keras_hub_model(task, size, PLANNED_STEPS, vocabulary_size,
                                           steps_per_execution, jit_compile)

    def _fit(self, steps, timer):
        self.model.fit(self.data, steps_per_epoch=steps, epochs=1, callbacks=[timer], verbose=0)


def make_side(framework, task, size, data, vocabulary_size, steps_per_execution=1,
              jit_compile=False, fast_dropout=None):
    """A TrainerSide or KerasHubSide; build it under the Keras dtype policy to measure."""
    if framework == "tfmodels":
        return TrainerSide(task, size, data, vocabulary_size, steps_per_execution, fast_dropout)
    return KerasHubSide(task, size, data, vocabulary_size, steps_per_execution, jit_compile)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} {value!r} unknown; choose one of {', '.join(choices)}")


def _result(framework, task, size, precision, times, *, batch_size, sequence_length,
            vocabulary_size, max_predictions, **settings):
    flops = common.train_flops_per_step(size, batch_size, sequence_length, task,
                                        vocabulary_size, max_predictions)
    result = {"framework": framework, "task": task, "size": size.name, "size_label": size.label,
              "precision": precision, "batch_size": batch_size,
              "sequence_length": sequence_length, "max_predictions": max_predictions,
              "flops_per_step": flops, **settings}
    result.update(common.summarize_steps(times, batch_size, batch_size * sequence_length, flops))
    return result


def turns_result(framework, task, size, precision, side_turns, *, rounds, steps_per_round,
                 **keys):
    """The result row of one side of `interleave.run_rounds`: `_result` over all its timed
    steps, plus rounds, steps_per_round and round_median_step_s (each turn's median step time,
    for per-round ratios). `keys` as `_result` (batch_size, sequence_length, ...)."""
    times = [t for turn in side_turns for t in turn]
    return _result(framework, task, size, precision, times, rounds=rounds,
                   steps_per_round=steps_per_round,
                   round_median_step_s=[statistics.median(turn) for turn in side_turns], **keys)


def measure_training(framework, task, size, precision, *, vocabulary_size, batch_size=32,
                     sequence_length=128, warmup=5, timed_steps=20, max_predictions=20,
                     steps_per_execution=1, jit_compile=False, fast_dropout=None):
    """Measures one training configuration on its own; returns a result dict.

    Args:
        framework: str. "tfmodels" or "keras_hub".
        task: str. "classification" or "mlm".
        size: common.ModelSize.
        precision: str. "float32" or "mixed_bfloat16" (Keras global policy while building).
        vocabulary_size: int. V of the encoder (and of the tied MLM output).
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        warmup: int. tf.function calls not timed (tracing). Defaults to 5.
        timed_steps: int. Steps timed after warm-up. Defaults to 20.
        max_predictions: int. P for mlm. Defaults to 20.
        steps_per_execution: int. Steps per tf.function call. Defaults to 1.
        jit_compile: bool. XLA for keras-hub fit. Defaults to False.
        fast_dropout: bool | None. Trainer only; None keeps the binaries' default.
    """
    _check_choice("framework", framework, FRAMEWORKS)
    _check_choice("task", task, TASKS)
    keras.backend.clear_session()
    data = repeated_dataset(synthetic_batch(task, batch_size, sequence_length, vocabulary_size,
                                            max_predictions))
    with common.dtype_policy(precision):
        side = make_side(framework, task, size, data, vocabulary_size, steps_per_execution,
                         jit_compile, fast_dropout)
    side.run(warmup * steps_per_execution)
    calls = 1 + -(-timed_steps // steps_per_execution)
    times = side.run(calls * steps_per_execution)
    return _result(framework, task, size, precision, times, batch_size=batch_size,
                   sequence_length=sequence_length, vocabulary_size=vocabulary_size,
                   max_predictions=max_predictions, warmup=warmup,
                   steps_per_execution=steps_per_execution, jit_compile=jit_compile,
                   fast_dropout=fast_dropout)


def compare_training(task, size, precision, *, vocabulary_size, frameworks=FRAMEWORKS,
                     torch_worker=None, batch_size=32, sequence_length=128, warmup=3, rounds=4,
                     steps_per_round=4, max_predictions=20):
    """Measures several frameworks on one configuration, interleaved; returns one row each.

    Every side is built and warmed up first, then the sides take turns (`interleave.run_rounds`),
    so a change in the machine's load hits all of them alike.

    Args:
        task: str. "classification" or "mlm".
        size: common.ModelSize.
        precision: str. "float32" or "mixed_bfloat16".
        vocabulary_size: int. V of the encoder.
        frameworks: tuple of str. TensorFlow sides, from FRAMEWORKS. Defaults to both.
        torch_worker: hf_torch.HFWorker or None. Adds transformers + torch (classification).
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        warmup: int. Untimed steps per side before the rounds. Defaults to 3.
        rounds: int. Turns per side. Defaults to 4.
        steps_per_round: int. Steps per turn (each turn times steps_per_round - 1 intervals).
            Defaults to 4.
        max_predictions: int. P for mlm. Defaults to 20.

    Returns:
        list of dict: per side, the measure_training fields plus rounds, steps_per_round and
        round_median_step_s (each turn's median step time, for the spread of the ratio).
    """
    from benchmarks import hf_torch, interleave

    _check_choice("task", task, TASKS)
    for framework in frameworks:
        _check_choice("framework", framework, FRAMEWORKS)
    keras.backend.clear_session()
    data = repeated_dataset(synthetic_batch(task, batch_size, sequence_length, vocabulary_size,
                                            max_predictions))
    sides = {}
    with common.dtype_policy(precision):
        for framework in frameworks:
            sides[framework] = make_side(framework, task, size, data, vocabulary_size)
    if torch_worker is not None:
        sides["hf_torch"] = hf_torch.TorchSide(torch_worker, hf_torch.worker_config(
            size, precision, vocabulary_size, batch_size, sequence_length))
    turns = interleave.run_rounds(sides, rounds, steps_per_round, warmup)
    rows = []
    for name, side_turns in turns.items():
        row = turns_result(name, task, size, precision, side_turns, rounds=rounds,
                           steps_per_round=steps_per_round, batch_size=batch_size,
                           sequence_length=sequence_length, vocabulary_size=vocabulary_size,
                           max_predictions=max_predictions, warmup=warmup,
                           steps_per_execution=1, jit_compile=False, fast_dropout=None)
        rows.append({**row, **getattr(sides[name], "details", {})})
    return rows
