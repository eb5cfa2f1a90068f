import keras
import numpy as np
import pytest

from tfmodels.training import optimization
from tfmodels.training.optimization import WarmupDecaySchedule, build_optimizer


def test_linear_warmup_then_linear_decay():
    schedule = WarmupDecaySchedule(1.0, total_steps=10, warmup_steps=2, decay="linear")
    values = [float(schedule(step)) for step in range(12)]
    np.testing.assert_allclose(values[:3], [0.5, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(values[6], 0.5, atol=1e-6)
    np.testing.assert_allclose(values[10:], [0.0, 0.0], atol=1e-6)


def test_cosine_decay_reaches_end_rate():
    schedule = WarmupDecaySchedule(1.0, total_steps=4, decay="cosine", end_learning_rate=0.1)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 2, 4)], [1.0, 0.55, 0.1], atol=1e-6)


def test_schedule_config_round_trip():
    schedule = WarmupDecaySchedule(3e-4, total_steps=100, warmup_steps=10, decay="cosine")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored.get_config() == schedule.get_config()


def test_warmup_fraction_resolves_to_steps():
    optimizer = build_optimizer("adamw", 1e-3, warmup_fraction=0.1, total_steps=50)
    assert optimizer.learning_rate.__class__ is not None
    assert optimizer._learning_rate.warmup_steps == 5


def test_adamw_skips_bias_and_layer_norm_and_applies_lr_multiplier():
    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(4, name="body")(inputs)
    hidden = keras.layers.LayerNormalization(name="layer_norm")(hidden)
    outputs = keras.layers.Dense(2, name="head")(hidden)
    model = keras.Model(inputs, outputs)
    optimizer = build_optimizer("adamw", 0.1, weight_decay=0.5, decay="constant",
                              lr_multipliers={"head": 10.0})
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"body/kernel", "head/kernel"}
    head_kernel = next(v for v in model.trainable_variables if v.path == "head/kernel")
    body_kernel = next(v for v in model.trainable_variables if v.path == "body/kernel")
    assert optimizer.lr_multiplier(head_kernel) == 10.0
    assert optimizer.lr_multiplier(body_kernel) == 1.0
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    grads = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    step = {v.path: np.abs(v.numpy() - before[v.path]).max() for v in model.trainable_variables}
    assert step["head/bias"] == pytest.approx(10 * step["body/bias"], rel=1e-3)


def test_optimizer_config_round_trip():
    optimizer = build_optimizer("adamw", 1e-3, total_steps=10, clipnorm=1.0,
                                lr_multipliers={"head": 5.0})
    restored = optimizer.__class__.from_config(optimizer.get_config())
    assert restored.lr_multipliers == {"head": 5.0}
    assert restored.global_clipnorm == 1.0


def test_adam_has_no_weight_decay():
    assert build_optimizer("adam", 1e-3, decay="constant").weight_decay is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="sgd"), "optimizer 'sgd' unknown; choose one of adamw, adam"),
    (dict(decay="step"), "decay 'step' unknown"),
    (dict(decay="linear", total_steps=None), "total_steps must be a positive int"),
    (dict(warmup_fraction=1.5, total_steps=10), r"warmup_fraction must be in \[0, 1\]"),
    (dict(learning_rate=0.0, decay="constant"), "learning_rate must be > 0"),
    (dict(beta_2=1.0, decay="constant"), r"beta_2 must be in \[0, 1\); got 1.0"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(optimization.OptimizerConfigError, match=match):
        build_optimizer(**kwargs)
