"""Test helpers that start Python child processes: a quiet environment, two local worker
processes forming one MultiWorkerMirroredStrategy job (training and reliability tests), and
waiting for what a child process does."""
import json
import os
import socket
import subprocess
import sys
import time

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}


def free_ports(count):
    """`count` TCP ports free on localhost right now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(script, model_dir, output_paths):
    """Starts `python script model_dir output_path` once per output path, as workers 0..n-1 of
    one cluster (TF_CONFIG); returns the processes (stdout and stderr merged)."""
    workers = [f"localhost:{port}" for port in free_ports(len(output_paths))]
    processes = []
    for index, output_path in enumerate(output_paths):
        env = dict(os.environ, **QUIET_ENV, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, script, str(model_dir), str(output_path)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def finish(processes, timeout=300):
    """Waits for every worker (killing the rest on timeout); asserts each exited 0."""
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output[-3000:]
    return outputs


def wait_for(predicate, timeout, process=None, interval=0.05):
    """Polls `predicate` until true; fails when `process` exits first or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before the condition held")
        time.sleep(interval)
    raise AssertionError(f"timed out waiting ({timeout} s)")
