"""One step-counting rule: optimizer steps from step 0, epochs of batches // grad_accum_steps."""
import os

import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.config import load_config
from tfmodels.tasks import common, train
from tfmodels.training import (StepPlan, StepPlanError, Trainer, build_optimizer, optimizer_steps_per_epoch,
                               plan_steps)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("kwargs, expected", [
    (dict(epochs=3, steps_per_epoch=10), StepPlan(3, 30, 10)),
    (dict(steps=25, steps_per_epoch=10), StepPlan(3, 25, 10)),
    (dict(epochs=4, steps=10), StepPlan(4, 10, 3)),
    (dict(epochs=3, steps=12, steps_per_epoch=10), StepPlan(3, 12, 10)),
    (dict(epochs=2), StepPlan(2, None, None)),
])
def test_plan_steps(kwargs, expected):
    assert plan_steps(**kwargs) == expected


def test_optimizer_steps_per_epoch_counts_whole_accumulation_groups():
    assert optimizer_steps_per_epoch(10, 1) == 10
    assert optimizer_steps_per_epoch(10, 3) == 3
    with pytest.raises(StepPlanError, match="2 batches, fewer than grad_accum_steps=4"):
        optimizer_steps_per_epoch(2, 4)
    with pytest.raises(StepPlanError, match="epochs must be an int >= 1"):
        plan_steps(epochs=0)


def _trainer(**kwargs):
    optimizer = build_optimizer("adamw", 1e-2, decay="constant")
    return Trainer(build_mlp(), optimizer, verbose=0, **kwargs)


@pytest.mark.parametrize("repeat", [False, True])
def test_a_second_fit_continues_to_the_new_total(repeat):
    x, y = make_classification_arrays()
    data = make_dataset(x, y, 16)  # 6 batches
    data = data.repeat() if repeat else data
    trainer = _trainer()
    trainer.fit(data, steps=3)
    assert int(trainer.global_step.numpy()) == 3
    history = trainer.fit(data, steps=15)
    assert int(trainer.global_step.numpy()) == 15
    assert history["loss"]
    trainer.fit(data, steps=15)  # nothing left to do
    assert int(trainer.global_step.numpy()) == 15


def test_a_second_fit_on_the_same_dataset_continues_its_data():
    x, y = make_classification_arrays()
    seen = []
    data = tf.data.Dataset.range(6).map(lambda i: ({"features": tf.fill([2, 8], tf.cast(i, tf.float32))},
                                                   tf.zeros([2], tf.int32)))

    trainer = _trainer()
    trainer.fit(data.repeat(), steps=2, steps_per_epoch=6)
    iterator = trainer._data.iterator
    trainer.fit(data.repeat(), steps=4, steps_per_epoch=6)  # another dataset object: starts over
    assert trainer._data.iterator is not iterator
    same = data.repeat()
    trainer.fit(same, steps=5, steps_per_epoch=6)
    iterator = trainer._data.iterator
    trainer.fit(same, steps=6, steps_per_epoch=6)
    assert trainer._data.iterator is iterator
    seen.append(int(next(iterator)[0]["features"][0, 0].numpy()))
    assert seen == [2]  # steps 5 and 6 read batches 0 and 1 of this dataset object


def test_epochs_with_gradient_accumulation_pass_once_over_the_data_per_epoch(tmp_path):
    """Two epochs of digits with grad_accum_steps=2 are 2 x (batches // 2) optimizer steps, and the
    learning-rate schedule is sized for them (it reaches 0 at the last step, not before)."""
    config = load_config(os.path.join(REPO, "configs", "mlp_digits.yaml"),
                         ["trainer.epochs=2", "trainer.grad_accum_steps=2", "trainer.decay=linear",
                          "trainer.checkpoint_every_steps=100000", "data.batch_size=64"],
                         model_dir=str(tmp_path))
    result = train.run(config)
    splits = train.load_feature_splits(config)
    batches = -(-len(splits.train) // 64)
    expected_steps = 2 * (batches // 2)
    assert common.step_plan(config, config.trainer, len(splits.train)).total_steps == expected_steps
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith(f"ckpt-{expected_steps}")
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
