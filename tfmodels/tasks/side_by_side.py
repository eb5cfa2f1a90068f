"""Independent training runs side by side: one process each, the CPU cores shared out between them.

The pipeline's fine-tuning runs of one seed ((a) from the pretrained encoder, (b) from random
initialization, the LSTM row) read nothing of each other. On a CPU, a small model's step does not
use two cores fully (its ops are too small to split well), so two processes with one core's
threads each finish both runs sooner than one process running them one after the other with every
core. The runs' results do not depend on where they run; only floating-point rounding may differ.

Each run executes `function(*args)` in a fresh (spawned) Python process whose TensorFlow thread
pools are sized before it starts. Every line it writes to its stdout or stderr, Python's and
TensorFlow's C++ log lines alike, reaches this process's with the run's label. Signals keep their
meaning: SIGTERM to this process is passed on, so every run checkpoints and the caller raises
`TrainingPreempted` (a re-run resumes each run); Ctrl-C reaches the runs and raises
KeyboardInterrupt here once they have stopped. When one run fails, the others are stopped the same
way (they checkpoint) and its error is raised here. When this process dies without passing anything
on (SIGKILL, out of memory), Linux sends each run SIGTERM: they checkpoint and stop too.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing import connection as mp_connection
from multiprocessing import resource_tracker
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies
_STANDARD_OUTPUTS = (1, 2)  # stdout, stderr
_RELAY_WAIT_SECONDS = 10  # after the runs ended, for lines still on their way (a process they left running)


@dataclasses.dataclass(frozen=True)
class SideRun:
    """One run: `label` names it in the log; `function(*args)` does it and returns a picklable result."""

    label: str
    function: Callable[..., Any]
    args: tuple = ()


@dataclasses.dataclass(frozen=True)
class SideReport:
    """A run's result and its wall seconds from the common start to its report."""

    value: Any
    seconds: float


class SideRunError(RuntimeError):
    """A run's process ended without reporting a result (killed, out of memory)."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_run(num_runs: int, cores: int | None = None) -> int:
    """Each run's share of the cores: cores // runs, at least one thread."""
    return max(1, (cores or available_cores()) // num_runs)


def use_threads(threads: int) -> None:
    """Sizes this process's TensorFlow intra- and inter-op thread pools, before TensorFlow runs anything."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_side_by_side(runs: list[SideRun], threads: int | None = None) -> list[SideReport]:
    """Runs every `runs` entry in its own process at once; returns their reports in order.

    Args:
      runs: the runs; their functions and arguments must be picklable (module-level functions).
      threads: TensorFlow intra- and inter-op threads per run; None shares out `available_cores()`.

    Raises:
      TrainingPreempted: this process got SIGTERM (passed on to the runs, which checkpointed).
      KeyboardInterrupt: Ctrl-C, after every run stopped.
      The first failed run's own exception, or SideRunError when its process died without one.
    """
    threads = threads or threads_per_run(len(runs))
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow in each, never a forked one
    resource_tracker.ensure_running()  # started now, it keeps this process's own stdout and stderr
    processes, receivers = [], []
    with _LabelledOutputs() as outputs, _SignalsPassedOn(processes) as signals:  # no run is ever left behind
        for run in runs:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_child_main, args=(sender, run, threads), name=f"tfmodels {run.label}")
            with outputs.relayed(run.label):
                process.start()
            sender.close()
            processes.append(process)
            receivers.append(receiver)
        outcomes, seconds = _wait_for_outcomes(processes, receivers, signals, started)
    values = _results_or_raise(runs, processes, outcomes, signals)
    return [SideReport(value, elapsed) for value, elapsed in zip(values, seconds)]


def _wait_for_outcomes(processes, receivers, signals, started: float) -> tuple[list, list[float]]:
    """Each run's (ok, payload) report, or None for a process that ended without one, and the
    seconds from `started` to it. A failed run stops the others (SIGTERM: they checkpoint); Ctrl-C
    here is passed on and waited out."""
    outcomes: list = [None] * len(processes)
    seconds = [0.0] * len(processes)
    waiting = dict(enumerate(receivers))
    while waiting:
        try:
            ready = mp_connection.wait(list(waiting.values()))
        except KeyboardInterrupt:
            signals.interrupted = True
            signals.pass_on(signal.SIGINT)
            continue
        for index in [i for i, receiver in waiting.items() if receiver in ready]:
            try:
                outcomes[index] = waiting.pop(index).recv()
            except EOFError:  # the process ended without reporting
                pass
            seconds[index] = time.perf_counter() - started
            if _failed(outcomes[index]):  # the others checkpoint and stop
                processes[index].join()
                signals.pass_on(signal.SIGTERM)
    for process in processes:
        process.join()
    return outcomes, seconds


def _results_or_raise(runs, processes, outcomes, signals) -> list:
    """The results, or what to raise, in this order: Ctrl-C; the first run's own error (other than
    being stopped); a process that died unasked; a stop for SIGTERM (the first run's checkpoint)."""
    from tfmodels.training import TrainingPreempted

    if signals.interrupted:
        raise KeyboardInterrupt
    errors = [outcome[1] for outcome in outcomes if outcome is not None and _failed(outcome)]
    for error in errors:
        if not isinstance(error, TrainingPreempted):
            raise error
    for run, process, outcome in zip(runs, processes, outcomes):
        if outcome is None and process.pid not in signals.stopped:
            raise SideRunError(f"{run.label}: its process ended with exit code {process.exitcode} before "
                               "reporting a result; run the same command again to resume")
    if errors:
        raise errors[0]
    unstarted = [run.label for run, outcome in zip(runs, outcomes) if outcome is None]
    if unstarted:  # stopped before its training started
        raise TrainingPreempted(None, 0, message=f"preempted by SIGTERM before {', '.join(unstarted)} started "
                                "training (nothing to checkpoint); run the same command again to resume")
    return [outcome[1] for outcome in outcomes]


def _failed(outcome) -> bool:
    """Whether a run's outcome (its (ok, payload) report, None when it ended without one) is a failure."""
    return outcome is None or not outcome[0]


class _SignalsPassedOn:
    """While waiting (main thread only): SIGTERM here is passed on to the runs and recorded."""

    def __init__(self, processes):
        self.processes = processes
        self.stopped: set[int] = set()  # the runs sent SIGTERM
        self.interrupted = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, signum, frame):
        del signum, frame
        self.pass_on(signal.SIGTERM)

    def pass_on(self, signum):
        for process in self.processes:
            if process.is_alive():
                if signum == signal.SIGTERM:
                    self.stopped.add(process.pid)
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass


class _LabelledOutputs:
    """Relays each run's stdout and stderr, line by line with the run's label, to this process's own.

    A process inherits file descriptors 1 and 2 when it starts, and TensorFlow's C++ code writes its
    log lines to 2 directly, so each run gets pipes there: `relayed(label)` puts them in place of this
    process's while it starts one run, and a thread per pipe passes its lines on."""

    def __init__(self):
        self._destinations: list[int] = []  # copies of this process's own stdout and stderr
        self._relays: list[threading.Thread] = []

    def __enter__(self):
        for stream in (sys.stdout, sys.stderr):  # what this process printed comes first
            if stream is not None:
                stream.flush()
        self._destinations = [os.dup(fd) for fd in _STANDARD_OUTPUTS]
        return self

    def __exit__(self, *exc):
        deadline = time.monotonic() + _RELAY_WAIT_SECONDS
        for relay in self._relays:
            relay.join(max(0.0, deadline - time.monotonic()))
        if not any(relay.is_alive() for relay in self._relays):  # else a relay may still write to them
            for fd in self._destinations:
                os.close(fd)

    @contextlib.contextmanager
    def relayed(self, label: str):
        """While a process starts inside the block, its stdout and stderr are pipes relayed with `label`."""
        pipes = [os.pipe() for _ in _STANDARD_OUTPUTS]
        try:
            for (_, write_end), fd in zip(pipes, _STANDARD_OUTPUTS):
                os.dup2(write_end, fd)
            yield
        finally:
            for destination, fd in zip(self._destinations, _STANDARD_OUTPUTS):
                os.dup2(destination, fd)
            for (read_end, write_end), destination in zip(pipes, self._destinations):
                os.close(write_end)  # the run's process holds the only write end now
                relay = threading.Thread(target=_relay_lines, args=(read_end, destination, f"[{label}] ".encode()),
                                         daemon=True)
                relay.start()
                self._relays.append(relay)


def _relay_lines(source: int, destination: int, prefix: bytes) -> None:
    """Writes each line read from `source` to `destination` after `prefix`, until end of file (a last
    line without its newline gets one). Once `destination` fails (a closed pipe), it reads on and drops
    the lines, so that the run never blocks on a full pipe."""
    pending, writable = b"", True

    def write(data: bytes) -> None:
        nonlocal writable
        try:
            while writable and data:
                data = data[os.write(destination, data):]
        except OSError:
            writable = False

    with os.fdopen(source, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            if lines:
                write(b"".join(prefix + line + b"\n" for line in lines))
    if pending:
        write(prefix + pending + b"\n")


class _Unread:
    """A run's stdout or stderr: a pipe to the waiting process. Once that process is gone (killed), what
    the run prints is dropped instead of raising BrokenPipeError, so the run still writes its
    checkpoint and stops (`_stop_with_parent`)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stop_with_parent() -> None:
    """Has Linux send this run SIGTERM when the process waiting for it dies, even by SIGKILL, so that
    an orphaned run checkpoints and stops (as on a preemption) instead of training on. Elsewhere a
    no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request above
        os.kill(os.getpid(), signal.SIGTERM)


def _child_main(sender, run: SideRun, threads: int) -> None:
    """A run's process: sizes TensorFlow's thread pools, runs, and reports (True, result) or
    (False, exception); an exception that cannot be pickled is reported as a RuntimeError."""
    if hasattr(sys.stdout, "reconfigure"):  # a pipe (_LabelledOutputs): each line as it is printed
        sys.stdout.reconfigure(line_buffering=True)
    sys.stdout, sys.stderr = _Unread(sys.stdout), _Unread(sys.stderr)
    _stop_with_parent()
    use_threads(threads)
    try:
        report = (True, run.function(*run.args))
    except BaseException as error:  # reported to the parent, which decides; KeyboardInterrupt included
        # A note, not the message: a user error's one line stays the same; a traceback shows where.
        error.add_note(f"in the run {run.label!r}:\n{traceback.format_exc()}")
        report = (False, error)
    try:
        sender.send(report)
    except BrokenPipeError:  # the waiting process is gone (killed): nobody to report to
        pass
    except Exception as send_error:  # the result or the exception does not pickle
        what = "result" if report[0] else f"error ({report[1]!r:.500})"
        sender.send((False, RuntimeError(f"{run.label}: its {what} could not be sent back: {send_error}")))
    finally:
        sender.close()
