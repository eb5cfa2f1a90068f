"""Runs side by side: results in order, each process's thread pools and labelled lines, errors and
signals passed between the processes."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from tfmodels.tasks import side_by_side
from tfmodels.tasks.side_by_side import SideRun
from tfmodels.training import PREEMPTED_EXIT_STATUS, TrainingPreempted
from tests.subprocess_jobs import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_each_run_has_its_own_process_and_thread_pools_and_labelled_lines(capfd):
    runs = [SideRun("first", os.getpid), SideRun("second", tf.config.threading.get_intra_op_parallelism_threads),
            SideRun("third", print, ("a line\nand another",)),
            # as TensorFlow's C++ log lines are written: to file descriptor 2, past Python's sys.stderr
            SideRun("fourth", os.write, (2, b"I0000 a C++ line\nand the last, without its newline"))]
    reports = side_by_side.run_side_by_side(runs, threads=1)
    pid, threads, printed, written = (report.value for report in reports)
    assert pid != os.getpid() and threads == 1 and printed is None and written > 0
    assert all(report.seconds > 0 for report in reports)
    captured = capfd.readouterr()
    assert "[third] a line\n[third] and another\n" in captured.out
    assert "[fourth] I0000 a C++ line\n[fourth] and the last, without its newline\n" in captured.err
    assert all(line.startswith(("[first] ", "[second] ", "[third] ", "[fourth] "))
               for line in (captured.out + captured.err).splitlines()), captured


def test_threads_share_out_the_cores():
    assert side_by_side.threads_per_run(2, cores=2) == 1
    assert side_by_side.threads_per_run(3, cores=8) == 2
    assert side_by_side.threads_per_run(3, cores=2) == 1


def test_a_failed_run_stops_the_others_and_its_own_error_is_raised():
    started = time.perf_counter()
    with pytest.raises(ValueError, match="invalid literal for int"):
        side_by_side.run_side_by_side([SideRun("sleeper", time.sleep, (120,)), SideRun("bad", int, ("x",))])
    assert time.perf_counter() - started < 60, "the sleeping run was stopped"


def test_a_process_that_dies_unasked_is_named():
    with pytest.raises(side_by_side.SideRunError, match=r"^died: its process ended with exit code 3 before "):
        side_by_side.run_side_by_side([SideRun("died", os._exit, (3,)), SideRun("fine", abs, (-1,))])


def test_training_preempted_crosses_processes_whole():
    error = pickle.loads(pickle.dumps(TrainingPreempted("/run/ckpt-7", 7)))
    assert (error.checkpoint, error.step, str(error)) == ("/run/ckpt-7", 7, str(TrainingPreempted("/run/ckpt-7", 7)))


def test_sigterm_is_passed_on_and_ends_as_a_preemption(tmp_path):
    """SIGTERM to the waiting process reaches the runs; it then raises TrainingPreempted."""
    script = tmp_path / "runs.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from tfmodels.tasks.side_by_side import SideRun, run_side_by_side
        from tfmodels.training import PREEMPTED_EXIT_STATUS, TrainingPreempted

        def wait(started):
            open(started, "w").close()
            time.sleep(120)

        if __name__ == "__main__":
            try:
                run_side_by_side([SideRun(name, wait, (sys.argv[1] + name,)) for name in "ab"])
            except TrainingPreempted as error:
                print(error, flush=True)
                raise SystemExit(PREEMPTED_EXIT_STATUS)
    """))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "started_")], cwd=REPO,
                               stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        wait_for(lambda: all(os.path.exists(tmp_path / f"started_{name}") for name in "ab"), 180, process)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == PREEMPTED_EXIT_STATUS, out
    assert "preempted by SIGTERM before a, b started training" in out


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state, parent pid, ...); None once it
    is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid):
    """The processes whose parent is `pid`."""
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(entry)
        if fields is not None and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def _running(pid):
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_runs_stop_when_the_waiting_process_is_killed(tmp_path):
    """SIGKILL to the waiting process cannot be passed on; Linux sends its runs SIGTERM instead. They
    print as they stop, to pipes nobody reads any more, and still write their checkpoint."""
    script = tmp_path / "runs.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, time
        from tfmodels.tasks.side_by_side import SideRun, run_side_by_side

        def train_until_sigterm(checkpoint):
            def stop(signum, frame):
                for _ in range(1000):  # more than a pipe holds
                    print("SIGTERM: stopping after this step and writing a checkpoint")
                    print("to stderr", file=sys.stderr)
                with open(checkpoint, "w") as f:
                    f.write("written")
                sys.exit(0)
            signal.signal(signal.SIGTERM, stop)
            open(checkpoint + ".started", "w").close()
            time.sleep(300)

        if __name__ == "__main__":
            run_side_by_side([SideRun(name, train_until_sigterm, (sys.argv[1] + name,)) for name in "ab"])
    """))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "checkpoint_")], cwd=REPO,
                               env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    runs = []
    try:
        # both runs started: TensorFlow's start-up takes from seconds to a minute on a loaded machine
        wait_for(lambda: all(os.path.exists(tmp_path / f"checkpoint_{name}.started") for name in "ab"), 180, process)
        runs = _children(process.pid)
        assert len(runs) >= 2, runs
        process.kill()
        process.wait()
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in runs) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_running(pid) for pid in runs), "a run outlived the killed process"
        assert sorted(os.listdir(tmp_path)) == ["checkpoint_a", "checkpoint_a.started", "checkpoint_b",
                                                "checkpoint_b.started", "runs.py"]
    finally:  # nothing left behind when the test fails
        for pid in [process.pid] + runs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_pipeline_runs_side_by_side_only_with_one_replica_on_a_cpu_of_several_cores(monkeypatch):
    from tfmodels.config import ExperimentConfig
    from tfmodels.tasks import common, pipeline
    from tfmodels.training import get_strategy

    def refusal(strategy):
        return pipeline.side_by_side_refusal(common.Run(ExperimentConfig(), "run", strategy, "float32"))

    monkeypatch.setattr(side_by_side, "available_cores", lambda: 2)
    assert refusal(tf.distribute.get_strategy()) is None
    assert refusal(get_strategy("one_device")) is None
    assert refusal(get_strategy("mirrored")) == "the strategy trains 2 replicas"
    monkeypatch.setattr(side_by_side, "available_cores", lambda: 1)
    assert refusal(tf.distribute.get_strategy()) == "this process has one CPU core"


def test_a_result_that_does_not_pickle_is_named():
    import threading
    with pytest.raises(RuntimeError, match=r"^lock: its result could not be sent back: cannot pickle"):
        side_by_side.run_side_by_side([SideRun("lock", threading.Lock)])
