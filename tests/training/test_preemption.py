"""SIGTERM during fit: the step finishes, a checkpoint is written, TrainingPreempted names it, and
a new Trainer resumes to the same final weights as an uninterrupted run."""
import os
import random
import signal

import keras
import numpy as np
import pytest

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.training import Trainer, TrainingPreempted, build_optimizer


class SigtermAtStep(keras.callbacks.Callback):
    """Sends this process SIGTERM after optimizer step `step` (counted by the callback)."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _trainer(model_dir):
    keras.utils.set_random_seed(3)
    return Trainer(build_mlp(dropout=0.2), build_optimizer("adamw", 1e-2, decay="constant"), seed=3,
                   model_dir=str(model_dir), checkpoint_every_steps=100, best_metric=None, verbose=0)


def _fit(trainer, callbacks=()):
    x, y = make_classification_arrays()
    return trainer.fit(make_dataset(x, y, 16, shuffle_seed=1), epochs=3, callbacks=list(callbacks))


@pytest.mark.parametrize("seed", [0, 1])
def test_sigterm_checkpoints_the_current_step_and_a_rerun_resumes_exactly(tmp_path, seed):
    reference = _trainer(tmp_path / "reference")
    _fit(reference)
    step = random.Random(seed).randint(1, 17)  # 18 steps in all
    preempted = _trainer(tmp_path / "run")
    with pytest.raises(TrainingPreempted, match=f"at step {step}: checkpoint .*ckpt-{step} written") as caught:
        _fit(preempted, [SigtermAtStep(step)])
    assert caught.value.step == step and os.path.exists(f"{caught.value.checkpoint}.index")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    resumed = _trainer(tmp_path / "run")
    _fit(resumed)
    assert int(resumed.global_step.numpy()) == 18
    for a, b in zip(reference.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
