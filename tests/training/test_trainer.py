import glob
import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.training import (NonFiniteLossError, Trainer, TrainerConfigError, apply_precision,
                               build_optimizer, get_strategy, restore_model_weights)


def _optimizer(learning_rate=1e-2, **kwargs):
    return build_optimizer("adamw", learning_rate, decay="constant", **kwargs)


def _weights(model):
    return [w.numpy() for w in model.weights]


class Recorder(keras.callbacks.Callback):
    """Records callback calls; raises on the `crash_at`-th train batch end."""

    def __init__(self, crash_at=None):
        super().__init__()
        self.calls, self.crash_at, self.batches = [], crash_at, 0

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin_{epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.crash_at:
            raise RuntimeError("simulated crash")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end_{epoch}:{','.join(sorted(logs))}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_fit_calls_callbacks_and_writes_checkpoints_and_summaries(tmp_path):
    x, y = make_classification_arrays()
    recorder = Recorder()
    trainer = Trainer(build_mlp(), _optimizer(), model_dir=str(tmp_path), log_every_steps=2,
                      verbose=0)
    history = trainer.fit(make_dataset(x, y, 16, shuffle_seed=1), make_dataset(x, y, 32),
                          epochs=3, callbacks=[recorder])
    assert history["loss"][-1] < history["loss"][0]
    assert len(history["val_macro_f1"]) == 3
    assert recorder.calls[0] == "train_begin" and recorder.calls[-1] == "train_end"
    assert recorder.calls[2] == "epoch_end_0:accuracy,examples_per_second,loss,step_time_seconds," \
                                "val_accuracy,val_loss,val_macro_f1,val_macro_precision,val_macro_recall"
    assert recorder.batches == 18
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-18")
    assert tf.train.latest_checkpoint(str(tmp_path / "best"))
    tags = set()
    for path in glob.glob(str(tmp_path / "train" / "events*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    assert {"loss", "accuracy", "learning_rate", "examples_per_second",
            "step_time_seconds"} <= tags


def test_keras_early_stopping_and_tensorboard_are_honoured(tmp_path):
    x, y = make_classification_arrays()
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=100.0)
    board = keras.callbacks.TensorBoard(str(tmp_path / "keras_tb"))
    trainer = Trainer(build_mlp(), _optimizer(), verbose=0)
    history = trainer.fit(make_dataset(x, y, 32), epochs=5, callbacks=[stopper, board])
    assert len(history["loss"]) == 2
    assert glob.glob(str(tmp_path / "keras_tb" / "train" / "events*"))


def test_own_early_stopping_on_best_metric():
    x, y = make_classification_arrays()
    trainer = Trainer(build_mlp(), _optimizer(1e-9), verbose=0, best_metric="val_loss",
                      best_mode="min", early_stopping_patience=1)
    history = trainer.fit(make_dataset(x, y, 32), make_dataset(x[:8], y[:8], 8), epochs=6)
    assert len(history["loss"]) < 6


def test_a_loss_as_best_metric_keeps_the_lowest_evaluation(tmp_path):
    x, y = make_classification_arrays()
    trainer = Trainer(build_mlp(), _optimizer(1e-2), model_dir=str(tmp_path), verbose=0, best_metric="val_loss",
                      early_stopping_patience=2)
    history = trainer.fit(make_dataset(x, y, 32), make_dataset(x, y, 32), epochs=5)
    losses = history["val_loss"]
    assert trainer.best_mode == "min" and losses[-1] < losses[0]
    assert len(losses) == 5, "a falling loss is an improvement, so training does not stop early"
    trainer.restore_best()
    assert trainer.evaluate(make_dataset(x, y, 32))["loss"] == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("validation, metric", [(True, "val_acc"), (True, "acc"), (False, "acc")])
def test_a_best_metric_the_run_does_not_log_is_refused_with_the_logged_names(validation, metric):
    x, y = make_classification_arrays()
    trainer = Trainer(build_mlp(), _optimizer(), verbose=0, best_metric=metric)
    with pytest.raises(TrainerConfigError, match=rf"best_metric='{metric}' is not a metric this run logs; "
                                                 r"allowed: .*accuracy, .*loss"):
        trainer.fit(make_dataset(x, y, 32), make_dataset(x, y, 32) if validation else None, epochs=2)


def test_mirrored_training_matches_single_device_with_clipping():
    x, y = make_classification_arrays()
    keras.utils.set_random_seed(0)
    reference_model = build_mlp()
    initial = _weights(reference_model)
    reference = Trainer(reference_model, _optimizer(clipnorm=0.1), verbose=0)
    reference.fit(make_dataset(x, y, 16), steps=4)
    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_mlp()
        model.set_weights(initial)
    trainer = Trainer(model, _optimizer(clipnorm=0.1), strategy=strategy, verbose=0)
    history = trainer.fit(make_dataset(x, y, 16), steps=4)
    assert np.isfinite(history["loss"][0])
    for got, want in zip(_weights(model), _weights(reference_model)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def _embedding_classifier():
    inputs = {"token_ids": keras.Input((6,), dtype="int32", name="token_ids")}
    embedded = keras.layers.Embedding(20, 8, name="embedding")(inputs["token_ids"])
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(embedded)
    return keras.Model(inputs, keras.layers.Dense(2, name="head", dtype="float32")(pooled))


def test_mirrored_clipping_with_embedding_gradients_matches_single_device():
    """Embedding lookups give IndexedSlices gradients; clipping their all-reduced sum across
    replicas failed with "unsupported operand type(s) for /: 'IndexedSlices' and 'int'"."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, size=(32, 6)).astype("int32")
    labels = (tokens[:, 0] > 9).astype("int32")
    data = tf.data.Dataset.from_tensor_slices(({"token_ids": tokens}, labels)).batch(8)
    keras.utils.set_random_seed(0)
    reference_model = _embedding_classifier()
    initial = _weights(reference_model)
    # A norm bound that does not bind: Keras clips IndexedSlices by the norm of their values (rows
    # repeated per lookup), the replicas' path by the norm of the summed dense gradient.
    Trainer(reference_model, _optimizer(clipnorm=100.0), verbose=0).fit(data, steps=3)
    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _embedding_classifier()
        model.set_weights(initial)
    Trainer(model, _optimizer(clipnorm=100.0), strategy=strategy, verbose=0).fit(data, steps=3)
    for got, want in zip(_weights(model), _weights(reference_model)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_gradient_accumulation_equals_larger_batch():
    x, y = make_classification_arrays(num_examples=64)
    keras.utils.set_random_seed(1)
    big_model = build_mlp()
    small_model = build_mlp()
    small_model.set_weights(_weights(big_model))
    Trainer(big_model, _optimizer(clipnorm=0.5), verbose=0).fit(make_dataset(x, y, 32), steps=2)
    Trainer(small_model, _optimizer(clipnorm=0.5), grad_accum_steps=4, steps_per_execution=2,
            verbose=0).fit(make_dataset(x, y, 8), steps=2)
    for got, want in zip(_weights(small_model), _weights(big_model)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def _resumable_run(model_dir, crash_at=None):
    x, y = make_classification_arrays(num_examples=48)
    keras.utils.set_random_seed(7)
    model = build_mlp(dropout=0.3)
    optimizer = build_optimizer("adamw", 1e-2, warmup_steps=2, total_steps=6)
    trainer = Trainer(model, optimizer, model_dir=model_dir, checkpoint_every_steps=2, verbose=0)
    trainer.fit(make_dataset(x, y, 16, shuffle_seed=3), steps=6,
                callbacks=[Recorder(crash_at=crash_at)])
    return model, trainer


def test_resume_after_crash_gives_identical_weights(tmp_path):
    tf.config.experimental.enable_op_determinism()
    uninterrupted, _ = _resumable_run(str(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_run(str(tmp_path / "b"), crash_at=5)
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("ckpt-4")
    resumed, trainer = _resumable_run(str(tmp_path / "b"))
    assert int(trainer.global_step.numpy()) == 6 and int(trainer.epoch.numpy()) == 2
    for got, want in zip(_weights(resumed), _weights(uninterrupted)):
        np.testing.assert_array_equal(got, want)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    x, y = make_classification_arrays(num_examples=96)
    sample_weight = np.ones(96, "float32")
    sample_weight[4 * 16 + 3] = np.nan  # in the fifth batch (a ReLU would swallow NaN features)
    trainer = Trainer(build_mlp(), _optimizer(), model_dir=str(tmp_path),
                      checkpoint_every_steps=2, verbose=0)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5; last good checkpoint: "
                                                 r".*ckpt-4"):
        trainer.fit(make_dataset(x, y, 16, sample_weight=sample_weight), epochs=1)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    fresh = build_mlp()
    restore_model_weights(fresh, str(tmp_path))
    assert all(np.isfinite(w).all() for w in _weights(fresh))


def test_evaluate_matches_sklearn_under_mirrored_strategy():
    x, y = make_classification_arrays(num_examples=50, seed=5)
    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_mlp()
    trainer = Trainer(model, strategy=strategy, verbose=0)
    trainer.fit(make_dataset(x, y, 16), epochs=2)
    result = trainer.evaluate(make_dataset(x, y, 16))
    logits = trainer.predict(make_dataset(x, y, 16))
    assert logits.shape == (50, 3) and logits.dtype == np.float32
    predictions = logits.argmax(-1)
    np.testing.assert_array_equal(result["confusion_matrix"], sk.confusion_matrix(y, predictions))
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y, predictions))
    assert result["macro_f1"] == pytest.approx(sk.f1_score(y, predictions, average="macro"))
    assert result["macro_precision"] == pytest.approx(
        sk.precision_score(y, predictions, average="macro", zero_division=0))
    expected_loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    assert result["loss"] == pytest.approx(float(np.mean(expected_loss)), rel=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_precision_policies_reduce_loss_with_float32_logits(policy):
    apply_precision(policy)
    x, y = make_classification_arrays()
    inputs = {"features": keras.Input((8,), name="features")}
    logits = keras.layers.Dense(3, name="head")(
        keras.layers.Dense(16, activation="relu", name="hidden")(inputs["features"]))
    trainer = Trainer(keras.Model(inputs, logits), _optimizer(), verbose=0)
    history = trainer.fit(make_dataset(x, y, 16), epochs=3)
    assert history["loss"][-1] < history["loss"][0] * 0.9
    assert trainer.predict(make_dataset(x, y, 32)).dtype == np.float32


def test_unfreezing_during_fit_retraces_with_new_trainable_variables():
    x, y = make_classification_arrays()
    model = build_mlp()
    model.get_layer("hidden").trainable = False
    frozen_kernel = model.get_layer("hidden").kernel.numpy().copy()
    seen = {}

    class Unfreeze(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                seen["after_frozen_epoch"] = model.get_layer("hidden").kernel.numpy().copy()
                model.get_layer("hidden").trainable = True

    Trainer(model, _optimizer(), verbose=0).fit(make_dataset(x, y, 32), epochs=2,
                                                callbacks=[Unfreeze()])
    np.testing.assert_array_equal(seen["after_frozen_epoch"], frozen_kernel)
    assert not np.array_equal(model.get_layer("hidden").kernel.numpy(), frozen_kernel)


def _tiny_bert_classifier(vocabulary_size=40, sequence_length=12, dropout=0.1):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=sequence_length, dropout=dropout, name="encoder")
    inputs = {name: keras.Input((sequence_length,), dtype="int32", name=name)
              for name in ("token_ids", "padding_mask", "segment_ids")}
    pooled = backbone(inputs)["pooled_output"]
    logits = keras.layers.Dense(2, name="head", dtype="float32")(pooled)
    return keras.Model(inputs, logits, name="tiny_bert_classifier")


def _token_dataset(num_examples=48, sequence_length=12, batch_size=16):
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, sequence_length + 1, size=num_examples)
    padding_mask = (np.arange(sequence_length)[None, :] < lengths[:, None]).astype("int32")
    token_ids = rng.integers(3, 40, size=(num_examples, sequence_length)).astype("int32")
    token_ids *= padding_mask
    labels = (token_ids == 7).any(axis=1).astype("int32")
    features = {"token_ids": token_ids, "padding_mask": padding_mask,
                "segment_ids": np.zeros_like(token_ids)}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size), padding_mask


def test_gradient_accumulation_sums_a_bert_models_sparse_embedding_gradients():
    # The token embedding's gradient is sparse (IndexedSlices); accumulating two of them failed at
    # trace time ("unsupported operand type(s) for +").
    weights = []
    for batch_size, accumulation in ((16, 1), (8, 2)):
        keras.utils.set_random_seed(0)
        model = _tiny_bert_classifier(dropout=0.0)
        data, _ = _token_dataset(batch_size=batch_size)
        Trainer(model, _optimizer(3e-3), grad_accum_steps=accumulation, verbose=0).fit(data, steps=3)
        weights.append(_weights(model))
    for got, want in zip(*weights):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_bert_classifier_under_mirrored_strategy_counts_tokens(tmp_path):
    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    trainer = Trainer.from_builder(_tiny_bert_classifier, lambda: _optimizer(3e-3),
                                   strategy=strategy, seed=0, model_dir=str(tmp_path),
                                   log_every_steps=1, verbose=0)
    data, _ = _token_dataset()
    history = trainer.fit(data, data, epochs=2)
    assert history["loss"][-1] < history["loss"][0]
    assert set(trainer.evaluate(data)) >= {"macro_f1", "confusion_matrix"}
    tags = set()
    for path in glob.glob(str(tmp_path / "train" / "events*")):
        for record in tf.data.TFRecordDataset(path):
            tags.update(v.tag for v in tf.compat.v1.Event.FromString(record.numpy()).summary.value)
    assert "tokens_per_second" in tags


def _tiny_masked_lm(vocabulary_size=20, sequence_length=8):
    inputs = {"token_ids": keras.Input((sequence_length,), dtype="int32", name="token_ids"),
              "mask_positions": keras.Input((2,), dtype="int32", name="mask_positions")}
    hidden = keras.layers.Embedding(vocabulary_size, 8, name="embedding")(inputs["token_ids"])
    gathered = keras.ops.take_along_axis(hidden, inputs["mask_positions"][:, :, None], axis=1)
    logits = keras.layers.Dense(vocabulary_size, name="lm_head")(gathered)
    return keras.Model(inputs, logits, name="tiny_mlm")


def test_masked_lm_task_weights_by_mask_and_reports_perplexity():
    rng = np.random.default_rng(0)
    token_ids = rng.integers(0, 20, size=(32, 8)).astype("int32")
    positions = np.tile(np.array([[1, 5]], "int32"), (32, 1))
    mask_ids = np.take_along_axis(token_ids, positions, axis=1)
    weights = np.tile(np.array([[1.0, 0.0]], "float32"), (32, 1))
    data = tf.data.Dataset.from_tensor_slices((
        {"token_ids": token_ids, "mask_positions": positions}, mask_ids, weights)).batch(8)
    trainer = Trainer(_tiny_masked_lm(), _optimizer(5e-2), objective="mlm", verbose=0)
    history = trainer.fit(data, epochs=3)
    assert history["loss"][-1] < history["loss"][0]
    result = trainer.evaluate(data)
    logits = trainer.predict(data)
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = -np.mean(np.take_along_axis(log_probs[:, 0], mask_ids[:, :1], axis=1))
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["perplexity"] == pytest.approx(np.exp(result["loss"]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(objective="regression"), "objective 'regression' unknown; choose one of classification, mlm"),
    (dict(grad_accum_steps=0), "grad_accum_steps must be an int >= 1; got 0"),
    (dict(best_mode="up"), "best_mode 'up' unknown"),
    (dict(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\)"),
])
def test_invalid_trainer_arguments_raise(kwargs, match):
    with pytest.raises(TrainerConfigError, match=match):
        Trainer(build_mlp(), **kwargs)


def test_infinite_data_needs_steps():
    x, y = make_classification_arrays()
    with pytest.raises(TrainerConfigError, match="infinite train_data needs steps"):
        Trainer(build_mlp(), verbose=0).fit(make_dataset(x, y, 16).repeat())
