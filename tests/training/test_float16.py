"""mixed_float16 (what `precision: auto` picks on pre-Ampere GPUs), run on the CPU: dynamic loss
scaling, its checkpoint and the NaN guard."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.training import NonFiniteLossError, Trainer, apply_precision, build_optimizer, get_strategy


@pytest.fixture(autouse=True)
def _float16():
    apply_precision("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _loss_scale(trainer):
    return float(trainer.optimizer.dynamic_scale.numpy())


def _trainer(model_dir=None, strategy=None, initial_scale=None):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_mlp()
        optimizer = build_optimizer("adamw", 1e-2, decay="constant")
        if initial_scale is not None:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale)
    return Trainer(model, optimizer, strategy=strategy, model_dir=model_dir, verbose=0,
                   checkpoint_every_steps=4, best_metric=None)


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_float16_trains_with_a_loss_scale_optimizer(strategy_name):
    strategy = get_strategy(strategy_name, devices=["/cpu:0", "/cpu:1"] if strategy_name == "mirrored" else None)
    trainer = _trainer(strategy=strategy)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.layers[1].compute_dtype == "float16"
    x, y = make_classification_arrays()
    history = trainer.fit(make_dataset(x, y, 16, shuffle_seed=1), epochs=6)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert trainer.predict(make_dataset(x, y, 32)).dtype == np.float32


def test_overflowing_steps_are_skipped_and_the_scale_falls_without_tripping_the_nan_guard():
    """Dynamic loss scaling: with a scale of 2**60 the float16 gradients overflow; those steps are
    skipped (weights unchanged), the scale halves each time, and training then goes on."""
    trainer = _trainer(initial_scale=2.0 ** 60)
    x, y = make_classification_arrays()
    data = make_dataset(x, y, 16, shuffle_seed=1)
    before = [w.numpy().copy() for w in trainer.model.trainable_weights]
    trainer.fit(data, steps=1)
    assert _loss_scale(trainer) == 2.0 ** 59
    for old, new in zip(before, trainer.model.trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())
    history = trainer.fit(data, steps=60)
    assert _loss_scale(trainer) < 2.0 ** 30
    assert np.isfinite(history["loss"]).all()
    assert history["loss"][-1] < history["loss"][0]


def test_a_real_nan_still_stops_training():
    trainer = _trainer()
    x, y = make_classification_arrays()
    x[5] = np.nan
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 1"):
        trainer.fit(make_dataset(x, y, 16), epochs=1)


def test_the_loss_scale_is_checkpointed_and_resumes(tmp_path):
    x, y = make_classification_arrays()
    data = make_dataset(x, y, 16, shuffle_seed=1)
    trainer = _trainer(str(tmp_path), initial_scale=2.0 ** 60)
    trainer.fit(data, steps=8)  # overflows lower the scale; a checkpoint at step 8
    scale = _loss_scale(trainer)
    assert scale < 2.0 ** 60
    resumed = _trainer(str(tmp_path), initial_scale=2.0 ** 60)
    resumed.fit(data, steps=8)  # nothing left to train: only the restore runs
    assert int(resumed.global_step.numpy()) == 8
    assert _loss_scale(resumed) == scale
    for a, b in zip(trainer.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
