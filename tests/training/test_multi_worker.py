import os

import numpy as np
import pytest
import tensorflow as tf

from tests.subprocess_jobs import finish, start_workers

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_worker.py")


@pytest.mark.slow
def test_two_workers_train_identically_and_only_chief_writes_model_dir(tmp_path):
    model_dir = tmp_path / "model"
    finish(start_workers(WORKER_SCRIPT, model_dir,
                         [tmp_path / f"worker{index}.npz" for index in range(2)]), timeout=240)
    chief, other = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert bool(chief["is_chief"]) and not bool(other["is_chief"])
    assert chief["loss"][-1] < chief["loss"][0]
    weight_keys = [k for k in chief.files if k.startswith("arr_")]
    for key in weight_keys:
        np.testing.assert_array_equal(chief[key], other[key])
    assert str(chief["write_dir"]) == str(model_dir)
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
    assert "ckpt-8.index" in chief["wrote"] and "ckpt-8.index" in other["wrote"]
    assert str(other["write_dir"]) != str(model_dir)
    assert not os.path.exists(str(other["write_dir"]))
    assert sorted(os.listdir(tmp_path)) == ["model", "worker0.npz", "worker1.npz"]
