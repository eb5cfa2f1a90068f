"""Multi-worker recovery: kill one worker mid-run, restart the job, it resumes from the chief's checkpoint."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.reliability.conftest import QUIET_ENV, checkpoint_steps, wait_for

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_job.py")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_job(model_dir, output_dir):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, **QUIET_ENV, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, JOB, str(model_dir), str(output_dir / f"worker{index}.npz")],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def finish(processes, timeout=300):
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output[-3000:]


@pytest.mark.slow
def test_killed_worker_job_resumes_from_the_chief_checkpoint_and_workers_end_identical(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    (tmp_path / "ref_out").mkdir()
    (tmp_path / "out").mkdir()
    finish(start_job(reference_dir, tmp_path / "ref_out"))
    processes = start_job(killed_dir, tmp_path / "out")
    try:
        wait_for(lambda: any(step >= 30 for step in checkpoint_steps(killed_dir)), 300, processes[1], 0.01)
        os.kill(processes[1].pid, signal.SIGKILL)  # the non-chief worker dies mid-run
        processes[1].wait(timeout=30)
        try:  # the chief's collectives fail or hang without its peer: the job is restarted as a whole
            processes[0].wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(processes[0].pid, signal.SIGKILL)
            processes[0].wait(timeout=30)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    written = checkpoint_steps(killed_dir)
    assert written and written[-1] < 120
    finish(start_job(killed_dir, tmp_path / "out"))
    chief, other = (np.load(tmp_path / "out" / f"worker{i}.npz") for i in range(2))
    reference = np.load(tmp_path / "ref_out" / "worker0.npz")
    assert int(chief["resumed_at"]) == written[-1] and int(other["resumed_at"]) == written[-1]
    assert int(chief["step"]) == int(other["step"]) == 120
    keys = [k for k in chief.files if k.startswith("arr_")]
    for key in keys:
        np.testing.assert_array_equal(chief[key], other[key])
        np.testing.assert_allclose(chief[key], reference[key], rtol=1e-5, atol=1e-6)
