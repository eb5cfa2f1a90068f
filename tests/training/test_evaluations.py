"""Evaluations every N steps, the best model over them, early stopping and their resume."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays
from tfmodels.training import Trainer, TrainerConfigError, build_optimizer

STEPS_PER_EPOCH = 12  # 24 batches of 4, two per optimizer step


def _peaking_data():
    """Training data whose first half per epoch teaches the validation rule and second half undoes it.

    The first 12 batches have the true labels, the last 12 the labels shifted by one class, in this
    order every epoch: validation accuracy peaks mid-epoch and falls by the epoch's end.
    """
    x, y = make_classification_arrays(num_examples=96, seed=3)
    wrong = (y + 1) % 3
    train_y = np.concatenate([y[:48], wrong[48:]])
    train = tf.data.Dataset.from_tensor_slices(({"features": x}, train_y)).batch(4)
    validation = tf.data.Dataset.from_tensor_slices(({"features": x}, y)).batch(32)
    return train, validation


def _trainer(model_dir=None, **kwargs):
    keras.utils.set_random_seed(5)
    arguments = dict(eval_every_steps=3, grad_accum_steps=2, steps_per_execution=4, verbose=0, seed=5)
    arguments.update(kwargs)
    return Trainer(build_mlp(), build_optimizer("adam", 0.05, decay="constant"),
                   model_dir=model_dir, **arguments)


class CrashAt(keras.callbacks.Callback):
    """Raises after the `step`-th optimizer step (a stand-in for a killed process)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.step:
            raise RuntimeError("simulated crash")


def _best_record(model_dir):
    with open(model_dir / "best" / "best.json") as f:
        return json.load(f)


def test_evaluations_every_n_steps_pick_the_best_mid_epoch(tmp_path):
    train, validation = _peaking_data()
    trainer = _trainer(str(tmp_path))
    history = trainer.fit(train, validation, epochs=2)
    evaluations = history["evaluations"]
    # Every 3rd step (a 4-step call never crosses one), plus the epoch ends 12 and 24, each once.
    assert [e["step"] for e in evaluations] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [e["epoch"] for e in evaluations] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert history["val_accuracy"] == [evaluations[3]["val_accuracy"], evaluations[7]["val_accuracy"]]
    accuracies = [e["val_accuracy"] for e in evaluations]
    best = int(np.argmax(accuracies))
    assert evaluations[best]["step"] % STEPS_PER_EPOCH != 0, accuracies  # the data makes it mid-epoch
    assert max(accuracies) > max(history["val_accuracy"]) + 0.1, accuracies
    assert _best_record(tmp_path) == {"metric": "val_accuracy", "value": accuracies[best],
                                      "step": evaluations[best]["step"]}
    trainer.restore_best()
    assert trainer.evaluate(validation)["accuracy"] == pytest.approx(accuracies[best])
    assert _logged_steps(tmp_path / "validation", "accuracy") == {3, 6, 9, 12, 15, 18, 21, 24}


def _logged_steps(directory, tag):
    """The steps at which TensorBoard event files in `directory` hold `tag`."""
    steps = set()
    for path in tf.io.gfile.glob(str(directory / "events*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if any(value.tag == tag for value in event.summary.value):
                steps.add(event.step)
    return steps


def test_early_stopping_counts_evaluations_and_restores_the_best(tmp_path):
    train, validation = _peaking_data()
    trainer = _trainer(str(tmp_path), early_stopping_patience=2)
    history = trainer.fit(train, validation, epochs=4)
    accuracies = [e["val_accuracy"] for e in history["evaluations"]]
    best = int(np.argmax(accuracies))
    assert len(accuracies) == best + 3  # the best, then two evaluations without improvement
    assert all(a <= accuracies[best] for a in accuracies[best + 1:])
    assert int(trainer.global_step.numpy()) == history["evaluations"][-1]["step"] < 4 * STEPS_PER_EPOCH
    trainer.restore_best()
    assert trainer.evaluate(validation)["accuracy"] == pytest.approx(accuracies[best])


# 11 (one evaluation without improvement) repeats 14's path with a smaller count: slow.
@pytest.mark.parametrize("crash_step", [7, pytest.param(11, marks=pytest.mark.slow), 14])
def test_resume_keeps_the_evaluations_best_value_and_patience(tmp_path, crash_step):
    # Evaluations at 3, 6 (the best), 9, 12, 15 (the third without improvement: stop); checkpoints
    # at 5, 10, 12 and 15. A crash at 7 replays the best evaluation from checkpoint 5; at 11 and 14
    # the resumed run must remember one and two evaluations without improvement.
    train, validation = _peaking_data()
    reference = _trainer(str(tmp_path / "reference"), early_stopping_patience=3, checkpoint_every_steps=5)
    expected = reference.fit(train, validation, epochs=4)["evaluations"]
    assert [e["step"] for e in expected] == [3, 6, 9, 12, 15]
    killed = _trainer(str(tmp_path / "run"), early_stopping_patience=3, checkpoint_every_steps=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        killed.fit(train, validation, epochs=4, callbacks=[CrashAt(crash_step)])
    resumed = _trainer(str(tmp_path / "run"), early_stopping_patience=3, checkpoint_every_steps=5)
    history = resumed.fit(_peaking_data()[0], validation, epochs=4)
    got = history["evaluations"]
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    np.testing.assert_allclose([e["val_accuracy"] for e in got], [e["val_accuracy"] for e in expected])
    assert int(resumed.global_step.numpy()) == int(reference.global_step.numpy())
    assert _best_record(tmp_path / "run") == pytest.approx(_best_record(tmp_path / "reference"))


def test_a_checkpoint_at_an_epoch_end_records_that_epochs_evaluation(tmp_path):
    # A checkpoint every 6 steps falls on the epoch's end (12): it is written after the epoch-end
    # evaluation, so a run resumed from it still has the evaluation at 12.
    train, validation = _peaking_data()
    expected = _trainer(str(tmp_path / "reference"), checkpoint_every_steps=6).fit(train, validation, epochs=2)
    killed = _trainer(str(tmp_path / "run"), checkpoint_every_steps=6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        killed.fit(train, validation, epochs=2, callbacks=[CrashAt(13)])
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-12")
    got = _trainer(str(tmp_path / "run"), checkpoint_every_steps=6).fit(_peaking_data()[0], validation, epochs=2)
    assert [e["step"] for e in got["evaluations"]] == [e["step"] for e in expected["evaluations"]]
    assert [e["step"] for e in got["evaluations"]] == [3, 6, 9, 12, 15, 18, 21, 24]


def test_a_second_phase_continues_steps_best_and_evaluations(tmp_path):
    train, validation = _peaking_data()
    first = _trainer(str(tmp_path / "first"))
    first.fit(train, validation, epochs=1)
    best_first = max(e["val_accuracy"] for e in first.evaluations)
    model = first.model
    second = Trainer(model, build_optimizer("adam", 1e-9, decay="constant"), model_dir=str(tmp_path / "second"),
                     eval_every_steps=3, grad_accum_steps=2, verbose=0, previous_phase=first)
    history = second.fit(train, validation, epochs=1)
    steps = [e["step"] for e in history["evaluations"]]
    assert steps == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [e["epoch"] for e in history["evaluations"]][4:] == [1.25, 1.5, 1.75, 2.0]
    # TensorBoard counts on too (checkpoint names keep the phase's own steps)
    assert _logged_steps(tmp_path / "first" / "validation", "accuracy") == {3, 6, 9, 12}
    assert _logged_steps(tmp_path / "second" / "validation", "accuracy") == {15, 18, 21, 24}
    assert min(_logged_steps(tmp_path / "second" / "train", "loss")) > 12
    assert tf.train.latest_checkpoint(str(tmp_path / "second")).endswith("ckpt-12")
    # A learning rate of 1e-9 cannot beat the first phase's best: restore_best() loads the first's.
    assert not (tmp_path / "second" / "best").exists()
    assert second.restore_best().startswith(str(tmp_path / "first" / "best"))
    assert second.evaluate(validation)["accuracy"] == pytest.approx(best_first)


def test_a_second_phase_counts_on_its_console_epochs_and_steps(tmp_path, capsys):
    train, validation = _peaking_data()
    first = _trainer(str(tmp_path / "first"))
    first.fit(train, validation, epochs=1)
    second = Trainer(first.model, build_optimizer("adam", 1e-9, decay="constant"), model_dir=str(tmp_path / "second"),
                     eval_every_steps=3, grad_accum_steps=2, verbose=1, previous_phase=first)
    capsys.readouterr()
    second.fit(train, validation, epochs=1)
    printed = capsys.readouterr().out
    assert "epoch 2/2 step 15 validation:" in printed and "epoch 2/2 step 24 validation:" in printed
    assert "epoch 1/" not in printed


@pytest.mark.parametrize("kwargs, match", [
    (dict(eval_every_steps=0), "eval_every_steps must be an int >= 1 or None; got 0"),
    (dict(early_stopping_patience=0), "early_stopping_patience must be an int >= 1 or None; got 0"),
])
def test_invalid_evaluation_arguments_raise(kwargs, match):
    with pytest.raises(TrainerConfigError, match=match):
        Trainer(build_mlp(), **kwargs)


def test_eval_every_steps_needs_validation_data():
    train, _ = _peaking_data()
    with pytest.raises(TrainerConfigError, match="eval_every_steps=3 needs validation_data"):
        _trainer().fit(train, epochs=1)
