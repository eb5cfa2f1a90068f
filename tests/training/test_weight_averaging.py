"""Polyak averaging (`ema_decay`): training updates the trained weights; evaluations, best/ and the
model after fit use their moving average; checkpoints hold both."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.config import ConfigError, load_config
from tfmodels.training import OptimizerConfigError, Trainer, build_optimizer, get_strategy

EMA_DECAY = 0.8


def _weights(model):
    return [w.numpy() for w in model.weights]


def _data():
    x, y = make_classification_arrays(num_examples=64)
    return make_dataset(x, y, 16, shuffle_seed=3), make_dataset(x[:32], y[:32], 16)


def _fit(model_dir=None, ema_decay=EMA_DECAY, steps=8, validate=True, strategy=None, crash_after=None, dropout=0.3):
    """Trains the MLP for `steps` steps; returns the trainer."""
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(5)
    with strategy.scope():
        model = build_mlp(dropout=dropout)
        optimizer = build_optimizer("adamw", 1e-2, decay="constant", ema_decay=ema_decay)
    trainer = Trainer(model, optimizer, strategy=strategy, model_dir=model_dir, verbose=0, checkpoint_every_steps=2,
                      eval_every_steps=2 if validate else None, best_metric="val_accuracy" if validate else None)
    train, validation = _data()
    trainer.fit(train, validation if validate else None, steps=crash_after or steps, steps_per_epoch=4)
    return trainer


def _averages(trainer):
    return [average.numpy() for _, average in trainer._weight_averages()]


def test_the_model_after_fit_holds_the_average_and_evaluations_do_not_disturb_training():
    evaluated = _fit(validate=True)
    not_evaluated = _fit(validate=False)
    weights = [variable.numpy() for variable, _ in evaluated._weight_averages()]
    for got, want in zip(weights, _averages(evaluated)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(_weights(evaluated.model), _weights(not_evaluated.model)):
        np.testing.assert_array_equal(got, want)  # every evaluation put the trained weights back exactly
    plain = _fit(ema_decay=None, validate=False)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(plain.model), _weights(evaluated.model)))


def test_the_average_follows_the_decay_from_the_first_step():
    trainer = _fit(ema_decay=EMA_DECAY, steps=1, validate=False)
    trained = trainer._trained_weights
    # After one step: average = weights after step 1 (Keras starts the average at the first value).
    for got, want in zip(_averages(trainer), trained):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    trainer.fit(_data()[0], steps=2, steps_per_epoch=4)  # trains on from the trained weights
    assert trainer._trained_weights is not None
    second = trainer._trained_weights
    for average, first, latest in zip(_averages(trainer), trained, second):
        np.testing.assert_allclose(average, EMA_DECAY * first + (1 - EMA_DECAY) * latest, rtol=1e-5, atol=1e-7)


def test_evaluations_and_best_use_the_average(tmp_path):
    trainer = _fit(str(tmp_path), validate=True)
    validation = _data()[1]
    last = trainer.evaluations[-1]
    assert last["step"] == 8
    assert trainer.evaluate(validation)["loss"] == pytest.approx(last["val_loss"])  # the model holds the average
    with trainer.averaged_weights():  # already the average after fit: a no-op
        assert trainer.evaluate(validation)["loss"] == pytest.approx(last["val_loss"])
    best = max(trainer.evaluations, key=lambda e: e["val_accuracy"])  # the first evaluation at the best value
    assert trainer.restore_best() is not None
    assert trainer.evaluate(validation)["loss"] == pytest.approx(best["val_loss"])


def test_resume_with_an_average_is_exact(tmp_path):
    tf.config.experimental.enable_op_determinism()
    uninterrupted = _fit(str(tmp_path / "a"))
    _fit(str(tmp_path / "b"), crash_after=4)  # stops at step 4 as a preempted run would
    resumed = _fit(str(tmp_path / "b"))
    assert int(resumed.global_step.numpy()) == 8
    for got, want in zip(_weights(resumed.model), _weights(uninterrupted.model)):
        np.testing.assert_array_equal(got, want)
    assert resumed.evaluations == uninterrupted.evaluations


def test_two_replicas_average_like_one_device():
    one = _fit(validate=True, dropout=0.0)  # replicas draw their own dropout masks
    two = _fit(validate=True, dropout=0.0, strategy=get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]))
    for got, want in zip(_weights(two.model), _weights(one.model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_invalid_decay_is_named():
    with pytest.raises(OptimizerConfigError, match="ema_decay must be in"):
        build_optimizer("adamw", 1e-3, decay="constant", ema_decay=1.0)
    with pytest.raises(ConfigError, match=r"trainer\.ema_decay"):
        load_config("configs/mlp_digits.yaml", overrides=["trainer.ema_decay=1.5"])


def test_loss_scaled_float16_on_two_replicas_keeps_a_finite_average():
    from tfmodels.training import apply_precision
    apply_precision("mixed_float16")
    trainer = _fit(validate=True, dropout=0.0, strategy=get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(average).all() for average in _averages(trainer))
    assert any(not np.array_equal(a, t) for a, t in zip(_averages(trainer), trainer._trained_weights))
