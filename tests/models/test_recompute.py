"""Activation recomputation gives the plain model's gradients, dropout masks and trained weights."""
import functools

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import (apply_lora, build_bert_classifier, build_bert_encoder,
                             build_bert_pretrainer, build_mlp, recompute_mode, set_recompute,
                             unfreeze_top_k)

from model_test_data import MAX_LENGTH, VOCAB_SIZE, make_text_batch

KINDS = ("mean", "cls", "mlm")
LABELS = np.array([0, 1, 2, 1], "int32")
# Largest gradient difference allowed, relative to the largest gradient of the variable.
TOLERANCE = {"float32": 1e-5, "mixed_bfloat16": 2e-2, "mixed_float16": 2e-3}


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.config.set_dtype_policy("float32")


def _build(kind, recompute, dropout=0.1, seed=1):
    """A 3-layer BERT classifier ("mean"/"cls" pooling) or pretrainer ("mlm"), seeded."""
    keras.utils.set_random_seed(seed)
    encoder = build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE, max_sequence_length=MAX_LENGTH,
                                 dropout=dropout, num_layers=3, hidden_dim=32, num_heads=4,
                                 intermediate_dim=64)
    if kind == "mlm":
        model = build_bert_pretrainer(encoder)
    else:
        model = build_bert_classifier(encoder, num_classes=3, dropout=dropout, pooling=kind)
    set_recompute(model, "layers" if recompute else "none")
    return model


def _batch(kind):
    return make_text_batch(batch_size=4, length=12, num_masks=3 if kind == "mlm" else None)


def _loss(model, batch, kind):
    logits = tf.cast(model(batch, training=True), tf.float32)
    labels = batch["token_ids"][:, 1:4] if kind == "mlm" else LABELS
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                       from_logits=True))


def _gradients(model, batch, kind, in_function=False, scale=1.0):
    """{variable path: dense float32 gradient} of the loss (times `scale`, as loss scaling does)."""
    def step():
        with tf.GradientTape() as tape:
            loss = _loss(model, batch, kind) * scale
        return tape.gradient(loss, model.trainable_variables)

    gradients = (tf.function(step) if in_function else step)()
    return {variable.path: tf.convert_to_tensor(gradient).numpy() / scale
            for variable, gradient in zip(model.trainable_variables, gradients)
            if gradient is not None}


def _assert_equal_gradients(got, expected, tolerance):
    assert set(got) == set(expected) and got
    for path, gradient in expected.items():
        bound = tolerance * max(np.abs(gradient).max(), 1e-6)
        np.testing.assert_allclose(got[path], gradient, rtol=0, atol=bound, err_msg=path)


@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_equal_plain_model_with_dropout(kind, in_function):
    batch = _batch(kind)
    expected = _gradients(_build(kind, recompute=False), batch, kind, in_function)
    got = _gradients(_build(kind, recompute=True), batch, kind, in_function)
    _assert_equal_gradients(got, expected, TOLERANCE["float32"])


def test_redrawn_dropout_masks_would_change_the_gradients():
    # Keras' own RematScope recomputes the layers but lets dropout draw new masks; the
    # equality test above would catch that.
    batch = _batch("mean")
    expected = _gradients(_build("mean", recompute=False), batch, "mean")
    names = [f"transformer_layer_{i}" for i in range(3)]
    with keras.RematScope(mode="list_of_layers", layer_names=names):
        redrawn = _build("mean", recompute=False)
    got = _gradients(redrawn, batch, "mean")
    differences = [np.abs(got[path] - value).max() / np.abs(value).max()
                   for path, value in expected.items() if np.abs(value).max() > 0]
    assert max(differences) > 100 * TOLERANCE["float32"]


@pytest.mark.parametrize("kind, recomputed", [("mean", 3), ("cls", 2), ("mlm", 2)])
def test_each_layer_runs_again_in_the_backward_pass(kind, recomputed, monkeypatch):
    # "cls" and "mlm" compute the top layer piecewise (encoder_outputs), not through its call.
    calls = []
    original = keras_hub.layers.TransformerEncoder.call

    @functools.wraps(original)  # Keras reads the signature to build the layer
    def counting_call(layer, *args, **kwargs):
        calls.append(layer.name)
        return original(layer, *args, **kwargs)

    monkeypatch.setattr(keras_hub.layers.TransformerEncoder, "call", counting_call)
    batch = _batch(kind)
    for recompute, expected_calls in ((False, recomputed), (True, 2 * recomputed)):
        calls.clear()
        _gradients(_build(kind, recompute), batch, kind)
        assert len(calls) == expected_calls, (recompute, calls)


def test_dropout_random_stream_advances_as_in_plain_model():
    batch = _batch("mean")
    states = []
    for recompute in (False, True):
        model = _build("mean", recompute)
        _gradients(model, batch, "mean", in_function=True)
        states.append([v.numpy() for v in model.variables if "seed_generator_state" in v.path])
    assert len(states[0]) > 3
    np.testing.assert_array_equal(np.stack(states[0]), np.stack(states[1]))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_gradients_equal_plain_model_in_mixed_precision(precision):
    keras.config.set_dtype_policy(precision)
    batch = _batch("mean")
    scale = 1024.0 if precision == "mixed_float16" else 1.0  # keeps float16 gradients normal
    expected = _gradients(_build("mean", recompute=False), batch, "mean", True, scale)
    got = _gradients(_build("mean", recompute=True), batch, "mean", True, scale)
    _assert_equal_gradients(got, expected, TOLERANCE[precision])


def test_gradients_equal_plain_model_under_mirrored_strategy():
    from tfmodels.training import get_strategy

    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    batch = _batch("mlm")
    results = []
    for recompute in (False, True):
        with strategy.scope():
            model = _build("mlm", recompute)

        @tf.function
        def replica_gradients():
            def step():
                with tf.GradientTape() as tape:
                    loss = _loss(model, batch, "mlm")
                gradients = tape.gradient(loss, model.trainable_variables)
                return {v.path: tf.convert_to_tensor(g) for v, g in
                        zip(model.trainable_variables, gradients) if g is not None}
            return strategy.run(step)

        per_replica = replica_gradients()
        results.append([{path: strategy.experimental_local_results(value)[replica].numpy()
                         for path, value in per_replica.items()} for replica in (0, 1)])
    for plain, recomputed in zip(*results):
        _assert_equal_gradients(recomputed, plain, TOLERANCE["float32"])


@pytest.mark.parametrize("adapt", ["lora", "top_1"])
def test_gradients_equal_with_lora_or_frozen_layers(adapt):
    batch = _batch("cls")
    results = []
    for recompute in (False, True):
        model = _build("cls", recompute)
        count = apply_lora(model, rank=2) if adapt == "lora" else unfreeze_top_k(model, 1)
        results.append(_gradients(model, batch, "cls", in_function=True))
    assert len(results[0]) == len(model.trainable_variables) < len(model.weights)
    assert count.trainable < count.total
    _assert_equal_gradients(results[1], results[0], TOLERANCE["float32"])


def test_inference_save_load_and_export_are_unaffected(round_trip, tmp_path):
    from tfmodels.export import saved_model

    batch = _batch("cls")
    model = _build("cls", recompute=False)
    plain_config, plain_outputs = model.get_config(), model(batch)
    set_recompute(model, "layers")
    assert recompute_mode(model) == "layers"
    np.testing.assert_array_equal(model(batch), plain_outputs)
    assert model.get_config() == plain_config
    reloaded = round_trip(model)
    np.testing.assert_array_equal(reloaded(batch), model(batch))
    assert recompute_mode(reloaded) == "none"  # a run-time setting, not saved
    encoder = model.get_layer("pooled_encoder_output").encoder
    version = saved_model.export_encoder(encoder, export_base=str(tmp_path / "export"),
                                         model_name="encoder", verify=False)
    served = tf.saved_model.load(version).signatures["serving_default"](
        **{key: tf.constant(batch[key]) for key in ("token_ids", "padding_mask", "segment_ids")})
    np.testing.assert_allclose(served["pooled_output"], encoder(batch)["pooled_output"], atol=1e-6)


def test_set_recompute_turns_off_and_rejects_bad_input():
    model = _build("mean", recompute=True)
    assert set_recompute(model, "none") == 3 and recompute_mode(model) == "none"
    assert set_recompute(model, "layers") == 3 and recompute_mode(model) == "layers"
    with pytest.raises(ValueError, match="recompute='all' unknown; choose one of none, layers"):
        set_recompute(model, "all")
    mlp = build_mlp((4,), [8], 2)
    assert set_recompute(mlp, "none") == 0
    with pytest.raises(ValueError, match="needs transformer layers and model .* has none"):
        set_recompute(mlp, "layers")


def _train(kind, recompute, strategy, precision, steps=1):
    """Weights after `steps` Trainer steps (fast dropout masks, AdamW) on one repeated batch."""
    from tfmodels.training import Trainer, apply_precision, build_optimizer

    apply_precision(precision)
    batch = _batch(kind)
    if kind == "mlm":
        features = {k: batch[k] for k in ("token_ids", "padding_mask", "segment_ids",
                                          "mask_positions")}
        parts = (features, batch["token_ids"][:, 1:4], np.ones((4, 3), "float32"))
    else:
        parts = (batch, LABELS)
    with strategy.scope():
        model = _build(kind, recompute)
        optimizer = build_optimizer("adamw", 1e-3, decay="constant")
    trainer = Trainer(model, optimizer, objective="mlm" if kind == "mlm" else "classification",
                      strategy=strategy, best_metric=None, verbose=0)
    trainer.fit(tf.data.Dataset.from_tensors(parts).repeat(), steps=steps)
    return {w.path: w.numpy() for w in model.weights}, model


TRAINER_CELLS = [
    ("default", "mean", "float32"),
    pytest.param("mirrored", "mlm", "float32", marks=pytest.mark.slow),
    pytest.param("mirrored", "cls", "mixed_bfloat16", marks=pytest.mark.slow),
    pytest.param("one_device", "mlm", "mixed_bfloat16", marks=pytest.mark.slow),
    pytest.param("default", "mean", "mixed_float16", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("strategy_name, kind, precision", TRAINER_CELLS)
def test_trainer_steps_give_plain_model_weights(strategy_name, kind, precision):
    from tfmodels.training import get_strategy

    devices = {"mirrored": ["/cpu:0", "/cpu:1"], "one_device": ["/cpu:0"]}.get(strategy_name)
    strategy = get_strategy(strategy_name, devices=devices) if devices else get_strategy("default")
    expected, _ = _train(kind, False, strategy, precision)
    got, model = _train(kind, True, strategy, precision)
    assert recompute_mode(model) == "layers"
    initial = {w.path: w.numpy() for w in _build(kind, False).weights}
    moved = [path for path, value in expected.items() if not np.array_equal(value, initial[path])]
    assert len(moved) > len(expected) // 2
    for path, value in expected.items():
        np.testing.assert_allclose(got[path], value, rtol=0, atol=1e-6, err_msg=path)


def test_config_key_and_task_wiring():
    from tfmodels.config import ConfigError, load_config
    from tfmodels.tasks import common

    with pytest.raises(ConfigError, match="trainer.recompute='all' is not allowed; choose one of "
                                          "none, layers"):
        load_config(None, ["trainer.recompute=all"])
    config = load_config(None, ["trainer.recompute=layers", "pretrain.recompute=layers"])
    run = common.Run(config, "unused", tf.distribute.get_strategy(), "float32")
    model = _build("mean", recompute=False)
    common.make_trainer(run, config.trainer, model, None, None)
    assert recompute_mode(model) == "layers"
    with pytest.raises(ConfigError, match="pretrain.recompute: recompute='layers' needs "
                                          "transformer layers"):
        common.make_trainer(run, config.pretrain, build_mlp((4,), [8], 2), None, None)
