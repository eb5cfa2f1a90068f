"""SIGTERM during fit: the step finishes, a checkpoint is written, TrainingPreempted names it, and
a new Trainer resumes to the same final weights as an uninterrupted run. Signals during a checkpoint
write act after it, and a Ctrl-C is never lost."""
import os
import random
import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels.training import Trainer, TrainingPreempted, build_optimizer, preemption


class SigtermAtStep(keras.callbacks.Callback):
    """Sends this process SIGTERM after optimizer step `step` (counted by the callback)."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class SwallowedSigintAtStep(keras.callbacks.Callback):
    """Sends this process SIGINT after step `step` and swallows the KeyboardInterrupt, as an
    exception raised in a `__del__` method is swallowed."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen, self.swallowed = step, 0, False

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                _let_signal_handlers_run()
            except KeyboardInterrupt:
                self.swallowed = True


@pytest.fixture
def python_ctrl_c():
    """SIGINT raising KeyboardInterrupt, as in a process started from an interactive shell (a test
    run started in the background inherits SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _let_signal_handlers_run():
    """Python code for half a second: a handler of a signal sent before has run by the end."""
    for _ in range(50):
        time.sleep(0.01)


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


def test_a_sigint_during_a_checkpoint_write_acts_after_the_write(python_ctrl_c):
    tf.constant(1.0) + 1  # TensorFlow's threads run: the kernel may hand the signal to any of them
    finished = False
    with pytest.raises(KeyboardInterrupt):
        with preemption.signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            _let_signal_handlers_run()
            finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigterm_held_with_a_sigint_is_delivered_first_so_the_sigint_only_logs(python_ctrl_c):
    with preemption.SignalWatcher() as watcher:
        with preemption.signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            _let_signal_handlers_run()
        assert watcher.requested and not watcher.interrupted
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_swallowed_ctrl_c_still_stops_fit_at_the_next_step_boundary(tmp_path, python_ctrl_c):
    trainer = _trainer(tmp_path / "run")
    sigint = SwallowedSigintAtStep(5)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, [sigint])
    assert sigint.swallowed and int(trainer.global_step.numpy()) == 5  # of 18
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_the_process_ignores_stays_ignored_during_fit(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or in a background job
    try:
        trainer = _trainer(tmp_path / "run")
        sigint = SwallowedSigintAtStep(5)
        _fit(trainer, [sigint])
        assert not sigint.swallowed and int(trainer.global_step.numpy()) == 18
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_under_several_workers_a_first_ctrl_c_is_deferred_and_a_second_interrupts(python_ctrl_c):
    with preemption.SignalWatcher(defer_interrupt=True) as watcher:
        os.kill(os.getpid(), signal.SIGINT)
        _let_signal_handlers_run()  # no KeyboardInterrupt: the workers stop together at a step boundary
        assert watcher.interrupted and not watcher.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            _let_signal_handlers_run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
