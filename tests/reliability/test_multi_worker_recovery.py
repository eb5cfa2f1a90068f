"""Multi-worker recovery: kill one worker mid-run, restart the job, it resumes from the chief's checkpoint."""
import os
import signal
import subprocess

import numpy as np
import pytest

from tests.subprocess_jobs import finish, start_workers, wait_for
from tests.reliability.conftest import checkpoint_steps

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_job.py")


def start_job(model_dir, output_dir):
    return start_workers(JOB, model_dir, [output_dir / f"worker{index}.npz" for index in range(2)])


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
