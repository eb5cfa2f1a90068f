import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_worker.py")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_identically_and_only_chief_writes_model_dir(tmp_path):
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    model_dir = tmp_path / "model"
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, WORKER_SCRIPT, str(model_dir), str(tmp_path / f"worker{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=240)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output[-3000:]
    chief, other = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert bool(chief["is_chief"]) and not bool(other["is_chief"])
    assert chief["loss"][-1] < chief["loss"][0]
    weight_keys = [k for k in chief.files if k.startswith("arr_")]
    for key in weight_keys:
        np.testing.assert_array_equal(chief[key], other[key])
    assert str(chief["write_dir"]) == str(model_dir)
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
    assert not os.path.exists(str(other["write_dir"]))
    assert sorted(os.listdir(tmp_path)) == ["model", "worker0.npz", "worker1.npz"]
