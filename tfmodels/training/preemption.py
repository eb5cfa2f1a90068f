"""Preemption: on SIGTERM the Trainer finishes its step, checkpoints and stops; a re-run resumes.

Kubernetes, Slurm and spot-VM schedulers send SIGTERM first and SIGKILL after a grace period. While
`fit` runs, SIGTERM only sets a flag. At the next step boundary the workers agree on it (one
all-reduce under multi-worker training, so every worker stops after the same step), the chief
writes a step checkpoint, and `fit` raises `TrainingPreempted` naming it; the binaries then exit
with status `PREEMPTED_EXIT_STATUS`. SIGTERM and SIGINT arriving during that save are held until
the checkpoint is complete (every checkpoint write holds them), so a second signal cannot leave a
half-written one behind; once a stop is pending, SIGINT no longer interrupts it.

Ctrl-C (SIGINT) during `fit` raises KeyboardInterrupt as usual, and is never lost: should that
exception be swallowed on its way (Python ignores exceptions raised in `__del__` methods and
weakref callbacks, which TensorFlow runs during a step), the Trainer raises it again at the next
step boundary. Under multi-worker training a KeyboardInterrupt on one worker makes the others
fail in their collectives once its heartbeats stop, so there a first Ctrl-C is agreed on like a
SIGTERM: every worker stops after the same step and the chief writes its checkpoint; the
interrupted worker then raises KeyboardInterrupt and the others `TrainingPreempted`. A second
Ctrl-C stops that worker at once.

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

    def __init__(self, checkpoint, step, cause="SIGTERM", message=None):
        self.checkpoint, self.step, self.cause = checkpoint, step, cause
        where = f"checkpoint {checkpoint}" if checkpoint else "no model_dir, so no checkpoint"
        super().__init__(message or f"preempted by {cause} at step {step}: {where} written; run the same "
                         "command again to resume")

    def __reduce__(self):  # whole, so that a run in another process can report it (tasks/side_by_side.py)
        return type(self), (self.checkpoint, self.step, self.cause, str(self))


class SignalWatcher:
    """While active (a context manager; main thread only): SIGTERM sets `requested`; SIGINT, when
    it raises KeyboardInterrupt in this process (Python's default), sets `interrupted` and raises
    it, or with `defer_interrupt` (multi-worker training) only sets it the first time, so that the
    workers can stop together, and raises on the second. A SIGINT the process ignores (started in
    the background, or under nohup) stays ignored; after a SIGTERM any SIGINT only logs."""

    def __init__(self, defer_interrupt=False):
        self.defer_interrupt = defer_interrupt
        self.requested = False
        self.interrupted = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._take(signal.SIGTERM, self._on_sigterm)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._take(signal.SIGINT, self._on_sigint)
        return self

    def _take(self, signum, handler):
        """Installs `handler`, keeping the handler from before the watcher for `__exit__`."""
        self._previous.setdefault(signum, signal.signal(signum, handler))

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_sigterm(self, signum, frame):
        del signum, frame
        if not self.requested:
            logger.warning("SIGTERM: stopping after this step and writing a checkpoint")
            self._take(signal.SIGINT, self._on_sigint)  # from now on a Ctrl-C only logs
        self.requested = True

    def _on_sigint(self, signum, frame):
        del signum, frame
        if self.requested:  # once stopping, Ctrl-C must not abort the checkpoint that the stop writes
            logger.warning("SIGINT while stopping for SIGTERM: finishing the checkpoint first")
            return
        if self.defer_interrupt and not self.interrupted:
            self.interrupted = True
            logger.warning("SIGINT: every worker stops after this step and the chief writes a checkpoint; "
                           "Ctrl-C again stops this worker at once (the others then fail in their collectives)")
            return
        self.interrupted = True
        raise KeyboardInterrupt


# Delivered in this order after a hold: a SIGTERM first, so that a SIGINT with it only logs.
HELD_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def signals_held():
    """Holds SIGTERM and SIGINT until the block ends (a checkpoint write), then delivers them.

    A Ctrl-C or a scheduler's signal during the write so acts after it, never on half a checkpoint.
    The handlers are swapped for one that records the signal: blocking the signals in this thread
    (pthread_sigmask) would not hold them, since the kernel hands a process's signal to any thread
    that does not block it (TensorFlow's do not), and Python then runs the handler in this thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = set()
    previous = {}
    for signum in HELD_SIGNALS:
        if signal.getsignal(signum) is not None:  # None: a handler set outside Python, left alone
            previous[signum] = signal.signal(signum, lambda received, frame: pending.add(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in HELD_SIGNALS:
            if signum in pending:
                signal.raise_signal(signum)
