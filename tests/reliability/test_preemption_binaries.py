"""SIGTERM to a training binary at a random moment: it exits with status 75 and one line naming
the checkpoint it wrote; running the same command again resumes to the same final weights."""
import json
import os
import random
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.reliability.conftest import ROOT, checkpoint_steps, run_binary, start_binary
from tests.reliability.test_fault_tolerance import assert_same_weights, model_weights, read_json
from tests.subprocess_jobs import QUIET_ENV, free_ports, wait_for
from tfmodels.training import PREEMPTED_EXIT_STATUS

# 40 epochs of 51 steps: the SIGTERM lands in training (before step 400) even on a fast machine.
TRAIN = ["--config=configs/mlp_digits.yaml", "--override=deterministic=true", "--override=trainer.epochs=40",
         "--override=trainer.checkpoint_every_steps=40", "--override=trainer.best_metric=null"]
CHECKPOINT_STEPS = list(range(40, 401, 40))


def _start(args, log_path, env=None, prepare=None, interactive=False):
    """Starts the train binary; `interactive`: with SIGINT not ignored, as from a shell's prompt
    (a test run started in the background passes SIGINT ignored on to its children)."""
    command = [sys.executable, "-m", "trainers.train", *args]
    if prepare:  # import a fault-injection module first, then run the binary as __main__
        command = [sys.executable, "-c", f"import runpy, sys; import {prepare}; sys.argv = {['train', *args]!r}; "
                   "runpy.run_module('trainers.train', run_name='__main__')"]
    return subprocess.Popen(command, cwd=ROOT, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, **QUIET_ENV, PYTHONPATH=ROOT, **(env or {})),
                            preexec_fn=_default_sigint if interactive else None)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigterm_at_checkpoint(process, model_dir, step):
    """Sends SIGTERM as soon as the run has written the checkpoint of `step` (or a later one)."""
    wait_for(lambda: any(s >= step for s in checkpoint_steps(model_dir)), 300, process, 0.005)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)


def _preempted_line(log_path, last=True):
    """The one `preempted:` line; the last line of a single process's output (under multi-worker
    TensorFlow may log the coordination service's goodbye after it)."""
    lines = open(log_path).read().strip().splitlines()
    found = [line for line in lines if line.startswith("preempted: ")]
    assert len(found) == 1 and (not last or lines[-1] == found[0]), lines[-20:]
    return found[0]


def test_ctrl_c_ends_a_training_binary_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(TRAIN + [f"--model_dir={run_dir}"], tmp_path / "run.log", interactive=True)
    wait_for(lambda: checkpoint_steps(run_dir), 300, process, 0.005)  # Ctrl-C lands at or just after a write
    process.send_signal(signal.SIGINT)
    process.wait(timeout=300)
    lines = open(tmp_path / "run.log").read().strip().splitlines()
    assert process.returncode == 130, lines[-20:]
    assert lines[-1] == ("interrupted: a training run resumes from its last checkpoint when the same command "
                         "runs again") and "Traceback" not in "\n".join(lines)
    assert not os.path.exists(run_dir / "model.keras")


@pytest.mark.parametrize("seed", [0])
def test_sigterm_at_a_random_moment_then_rerun_matches_an_uninterrupted_run(tmp_path, seed):
    reference = run_binary("train", *TRAIN, f"--model_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference
    run_dir = tmp_path / "run"
    process = _start(TRAIN + [f"--model_dir={run_dir}"], tmp_path / "run.log")
    _sigterm_at_checkpoint(process, run_dir, random.Random(seed).choice(CHECKPOINT_STEPS))
    assert process.returncode == PREEMPTED_EXIT_STATUS, open(tmp_path / "run.log").read()[-3000:]
    line = _preempted_line(tmp_path / "run.log")
    step = int(line.split("at step ")[1].split(":")[0])
    assert f"checkpoint {run_dir}/ckpt-{step} written" in line
    assert tf.train.latest_checkpoint(str(run_dir)).endswith(f"ckpt-{step}")
    assert not os.path.exists(run_dir / "model.keras")
    resumed = run_binary("train", *TRAIN, f"--model_dir={run_dir}")
    assert resumed.returncode == 0, resumed
    assert f"resumed from {run_dir}/ckpt-{step} at step {step}" in resumed.stdout
    assert_same_weights(model_weights(tmp_path / "reference"), model_weights(run_dir))
    assert read_json(run_dir / "metrics.json") == read_json(tmp_path / "reference" / "metrics.json")


def test_a_second_sigterm_and_a_sigint_during_the_save_leave_a_complete_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(TRAIN + [f"--model_dir={run_dir}"], tmp_path / "run.log",
                     prepare="tests.reliability.signal_during_save")
    _sigterm_at_checkpoint(process, run_dir, 40)
    log = open(tmp_path / "run.log").read()
    assert process.returncode == PREEMPTED_EXIT_STATUS, log[-3000:]
    step = int(_preempted_line(tmp_path / "run.log").split("at step ")[1].split(":")[0])
    latest = tf.train.latest_checkpoint(str(run_dir))
    assert latest.endswith(f"ckpt-{step}")
    reader = tf.train.load_checkpoint(latest)  # complete: every tensor reads back
    assert int(reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")) == step
    for key in reader.get_variable_to_shape_map():
        if reader.get_variable_to_dtype_map()[key] != tf.variant:
            reader.get_tensor(key)
    resumed = run_binary("train", *TRAIN, f"--model_dir={run_dir}")
    assert resumed.returncode == 0, resumed


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_two_workers_stop_at_the_same_step_and_resume(tmp_path, signum):
    """SIGTERM or Ctrl-C to worker 1 only: both workers agree on the step and the chief writes the
    checkpoint; after SIGTERM both exit 75, after Ctrl-C worker 1 exits 130 and worker 0 75 (it
    does not wait in its collectives); re-running both resumes and ends with the weights of an
    uninterrupted job."""
    from tests.trainers.test_multi_worker_binaries import digests_by_worker, run_workers
    args = TRAIN + ["--strategy=multi_worker"]
    reference = run_workers("train", args + [f"--model_dir={tmp_path / 'reference'}"], 2)
    run_dir = tmp_path / "run"
    hosts = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        processes.append(_start(args + [f"--model_dir={run_dir}"], tmp_path / f"worker{index}.log",
                                env={"TF_CONFIG": json.dumps(tf_config)}, interactive=True))
    step = random.Random(5).choice(CHECKPOINT_STEPS)
    wait_for(lambda: any(s >= step for s in checkpoint_steps(run_dir)), 300, processes[1], 0.005)
    processes[1].send_signal(signum)
    for process in processes:
        process.wait(timeout=300)
    if signum == signal.SIGTERM:
        lines = [_preempted_line(tmp_path / f"worker{i}.log", last=False) for i in range(2)]
        assert [p.returncode for p in processes] == [PREEMPTED_EXIT_STATUS] * 2
        steps = {int(line.split("at step ")[1].split(":")[0]) for line in lines}
        assert len(steps) == 1, lines
    else:
        line = _preempted_line(tmp_path / "worker0.log", last=False)
        assert line.startswith("preempted: preempted by a Ctrl-C on another worker at step "), line
        assert [p.returncode for p in processes] == [PREEMPTED_EXIT_STATUS, 130]
        assert "interrupted: a training run resumes from its last checkpoint" in open(tmp_path / "worker1.log").read()
        steps = {int(line.split("at step ")[1].split(":")[0])}
    assert tf.train.latest_checkpoint(str(run_dir)).endswith(f"ckpt-{steps.pop()}")
    resumed = run_workers("train", args + [f"--model_dir={run_dir}"], 2)
    assert digests_by_worker(resumed) == digests_by_worker(reference)
    assert_same_weights(model_weights(tmp_path / "reference"), model_weights(run_dir))


# The demo's pipeline shrunk (tests/tasks/test_study.py), with (a) and (b) long enough to be stopped in training.
SIDE_BY_SIDE_PIPELINE = ["--config=configs/demo_zh_sentiment.yaml"] + [f"--override={o}" for o in (
    "model.variant=tiny", "model.max_sequence_length=64", "data.sequence_length=32", "data.limit=256",
    "data.vocab_size=600", "data.batch_size=16", "pretrain.steps=4", "pretrain.in_domain_steps=4",
    "export.verify_examples=4", "trainer.epochs=60", "trainer.checkpoint_every_steps=10",
    "trainer.eval_every_steps=200", "study.side_by_side=true")]


@pytest.mark.slow
def test_sigterm_to_the_pipeline_stops_its_side_by_side_runs_at_a_checkpoint_each_and_a_rerun_finishes(tmp_path):
    run_dir = tmp_path / "run"
    process = start_binary("pipeline", *SIDE_BY_SIDE_PIPELINE, f"--model_dir={run_dir}", log_path=tmp_path / "run.log")
    stages = [run_dir / "finetune", run_dir / "random_init"]
    wait_for(lambda: all(checkpoint_steps(stage) for stage in stages), 600, process, 0.01)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    log = open(tmp_path / "run.log").read()
    assert process.returncode == PREEMPTED_EXIT_STATUS, log[-3000:]
    assert "side by side, 2 processes" in log
    _preempted_line(tmp_path / "run.log")
    for stage in stages:  # each run wrote its own checkpoint on the way out, and no final model
        assert f"[{stage.name}] " in log and "SIGTERM: stopping after this step" in log
        assert tf.train.latest_checkpoint(str(stage)) and not os.path.exists(stage / "model.keras")
    stopped_at = {stage.name: checkpoint_steps(stage)[-1] for stage in stages}
    rerun = run_binary("pipeline", *SIDE_BY_SIDE_PIPELINE, f"--model_dir={run_dir}", timeout=600)
    assert rerun.returncode == 0, rerun
    for stage in stages:
        step = stopped_at[stage.name]
        assert f"[{stage.name}] resumed from {stage}/ckpt-{step} at step {step}" in rerun.stdout
        assert os.path.isfile(stage / "model.keras")
    assert os.path.isfile(run_dir / "results.json")


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl_c_in_a_terminal", "sigint_to_the_pipeline_only"])
def test_ctrl_c_stops_the_pipelines_side_by_side_runs_with_one_line(tmp_path, to_group):
    """A terminal's Ctrl-C reaches every process of the job; a SIGINT sent to the pipeline alone is
    passed on. Either way every run stops and the pipeline exits 130 with its one line."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "trainers.pipeline", *SIDE_BY_SIDE_PIPELINE, f"--model_dir={run_dir}"], cwd=ROOT,
        stdout=open(tmp_path / "run.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, **QUIET_ENV, PYTHONPATH=ROOT), preexec_fn=_default_sigint)
    stages = [run_dir / "finetune", run_dir / "random_init"]
    wait_for(lambda: all(checkpoint_steps(stage) for stage in stages), 600, process, 0.01)
    if to_group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=300)
    lines = open(tmp_path / "run.log").read().strip().splitlines()
    assert process.returncode == 130, lines[-20:]
    assert lines[-1] == ("interrupted: a training run resumes from its last checkpoint when the same command "
                         "runs again")
    left = lambda: subprocess.run(["pgrep", "-a", "-s", str(process.pid)], capture_output=True, text=True).stdout
    try:
        wait_for(lambda: not left(), 30)
    except AssertionError:
        raise AssertionError(f"processes left: {left()}") from None
