"""Preemption: on SIGTERM the Trainer finishes its step, checkpoints and stops; a re-run resumes.

Kubernetes, Slurm and spot-VM schedulers send SIGTERM first and SIGKILL after a grace period. While
`fit` runs, SIGTERM only sets a flag. At the next step boundary the workers agree on it (one
all-reduce under multi-worker training, so every worker stops after the same step), the chief
writes a step checkpoint, and `fit` raises `TrainingPreempted` naming it; the binaries then exit
with status `PREEMPTED_EXIT_STATUS`. SIGTERM and SIGINT arriving during that save are held until
the checkpoint is complete (every checkpoint write holds them), so a second signal cannot leave a
half-written one behind; once a stop is pending, SIGINT no longer interrupts it.

TensorFlow's `tf.distribute.experimental.PreemptionCheckpointHandler` implements the same protocol
for MultiWorkerMirroredStrategy and TPUStrategy only, saves through its own CheckpointManager and
ends the process itself; the Trainer needs it on every strategy, with its chief-only run
directory, best-model record and data-iterator state, so it agrees on the step with its own
all-reduce instead.
"""
import contextlib
import logging
import signal
import threading

logger = logging.getLogger(__name__)

# EX_TEMPFAIL: a temporary failure; running the same command again resumes.
PREEMPTED_EXIT_STATUS = 75


class TrainingPreempted(Exception):
    """Training stopped on SIGTERM after writing a checkpoint.

    Attributes:
      checkpoint: str or None. The checkpoint written (in model_dir), None without a model_dir.
      step: int. The optimizer step it holds.
    """

    def __init__(self, checkpoint, step):
        self.checkpoint, self.step = checkpoint, step
        where = f"checkpoint {checkpoint}" if checkpoint else "no model_dir, so no checkpoint"
        super().__init__(f"preempted by SIGTERM at step {step}: {where} written; run the same command "
                         "again to resume")


class SigtermWatcher:
    """Turns SIGTERM into a flag while active (a context manager; main thread only)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_sigterm(self, signum, frame):
        del signum, frame
        if not self.requested:
            logger.warning("SIGTERM: stopping after this step and writing a checkpoint")
            # Once stopping, Ctrl-C must not abort the checkpoint that the stop writes.
            self._previous.setdefault(signal.SIGINT, signal.signal(signal.SIGINT, self._on_sigint))
        self.requested = True

    @staticmethod
    def _on_sigint(signum, frame):
        del signum, frame
        logger.warning("SIGINT while stopping for SIGTERM: finishing the checkpoint first")


@contextlib.contextmanager
def signals_held():
    """Holds SIGTERM and SIGINT until the block ends (a checkpoint write), then delivers them.

    A Ctrl-C or a scheduler's signal during the write so acts after it, never on half a checkpoint.
    """
    held = {signal.SIGTERM, signal.SIGINT}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
