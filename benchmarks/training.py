"""Training throughput of BERT fine-tuning and masked-LM pretraining: tfmodels Trainer vs keras-hub fit.

Both sides train the same `keras_hub.models.BertBackbone` configuration on the same fixed
batch (all positions real tokens, so tokens/step = batch x sequence length) under the same
Keras global dtype policy. The tfmodels side uses the binaries' code path: the optimizer from
`tfmodels.tasks.common.make_optimizer` (AdamW, weight decay 0.01, clipnorm 1.0, linear decay)
and `tfmodels.training.Trainer` with the binaries' arguments, without a model_dir.
"""
from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common

FRAMEWORKS = ("tfmodels", "keras_hub")
TASKS = ("classification", "mlm")
LEARNING_RATE = 1e-4


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


def train_tfmodels(task, size, data, steps, vocabulary_size, steps_per_execution=1,
                   fast_dropout=None):
    """Trains with tfmodels.training.Trainer; returns (timer events, trainer).

    Args:
        task: str. "classification" or "mlm".
        size: common.ModelSize.
        data: tf.data.Dataset. Training batches (repeating, or with at least `steps` batches).
        steps: int. Optimizer steps to run in total.
        vocabulary_size: int. V of the encoder.
        steps_per_execution: int. Steps per tf.function call. Defaults to 1.
        fast_dropout: bool | None. Trainer(fast_dropout=...); None keeps the binaries' default.
    """
    from tfmodels.config import TrainerConfig
    from tfmodels.models import build_bert_classifier, build_bert_pretrainer
    from tfmodels.training import Trainer, get_strategy

    defaults = TrainerConfig()
    strategy = get_strategy("auto")
    with strategy.scope():
        encoder = _encoder(size, vocabulary_size, common.SEQUENCE_LENGTH)
        model = (build_bert_classifier(encoder, common.NUM_CLASSES, dropout=0.1)
                 if task == "classification" else build_bert_pretrainer(encoder))
        optimizer = tfmodels_optimizer(steps)
    trainer = Trainer(
        model, optimizer, task=task, strategy=strategy, model_dir=None,
        label_smoothing=defaults.label_smoothing, grad_accum_steps=defaults.grad_accum_steps,
        checkpoint_every_steps=defaults.checkpoint_every_steps,
        keep_checkpoints=defaults.keep_checkpoints, log_every_steps=defaults.log_every_steps,
        best_metric=None, steps_per_execution=steps_per_execution,
        fast_dropout=defaults.fast_dropout if fast_dropout is None else fast_dropout, seed=0,
        verbose=0)
    timer = make_step_timer()
    trainer.fit(data, steps=steps, callbacks=[timer])
    return timer.events, trainer


def train_keras_hub(task, size, data, steps, vocabulary_size, steps_per_execution=1,
                    jit_compile=False):
    """Trains keras-hub BertTextClassifier / BertMaskedLM with `fit`; returns (events, model).

    Arguments as `train_tfmodels`, plus jit_compile (bool, XLA).

    Same backbone configuration, AdamW with the same learning rate, weight decay and global
    clipnorm as the tfmodels side. `jit_compile=False` is Keras' own default on a CPU-only machine.
    """
    import keras_hub

    backbone = _encoder(size, vocabulary_size, common.SEQUENCE_LENGTH)
    optimizer = keras.optimizers.AdamW(
        learning_rate=keras.optimizers.schedules.PolynomialDecay(LEARNING_RATE, steps, 0.0),
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
    timer = make_step_timer()
    model.fit(data, steps_per_epoch=steps, epochs=1, callbacks=[timer], verbose=0)
    return timer.events, model


def measure_training(framework, task, size, precision, *, vocabulary_size, batch_size=32,
                     sequence_length=128, warmup=5, timed_steps=20, max_predictions=20,
                     steps_per_execution=1, jit_compile=False, fast_dropout=None):
    """Measures one training configuration; returns a result dict.

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
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework {framework!r} unknown; choose one of {', '.join(FRAMEWORKS)}")
    if task not in TASKS:
        raise ValueError(f"task {task!r} unknown; choose one of {', '.join(TASKS)}")
    keras.backend.clear_session()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        batch = synthetic_batch(task, batch_size, sequence_length, vocabulary_size,
                                max_predictions)
        calls = warmup + 1 + -(-timed_steps // steps_per_execution)
        steps = calls * steps_per_execution
        data = repeated_dataset(batch)
        if framework == "tfmodels":
            events, _ = train_tfmodels(task, size, data, steps, vocabulary_size,
                                       steps_per_execution, fast_dropout)
        else:
            events, _ = train_keras_hub(task, size, data, steps, vocabulary_size,
                                        steps_per_execution, jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    times = common.step_times(events, warmup)
    flops = common.train_flops_per_step(size, batch_size, sequence_length, task,
                                        vocabulary_size, max_predictions)
    result = {"framework": framework, "task": task, "size": size.name, "size_label": size.label,
              "precision": precision, "batch_size": batch_size,
              "sequence_length": sequence_length, "warmup": warmup,
              "steps_per_execution": steps_per_execution, "jit_compile": jit_compile,
              "fast_dropout": fast_dropout,
              "flops_per_step": flops}
    result.update(common.summarize_steps(times, batch_size, batch_size * sequence_length, flops))
    return result
