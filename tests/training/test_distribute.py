import json

import pytest
import tensorflow as tf

from tfmodels.training import distribute


def test_default_and_mirrored_strategies():
    assert distribute.get_strategy("default") is tf.distribute.get_strategy()
    mirrored = distribute.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    assert distribute.is_chief(mirrored)
    assert isinstance(distribute.get_strategy("one_device", devices=["/cpu:0"]),
                      tf.distribute.OneDeviceStrategy)


def test_auto_without_gpu_or_tf_config_is_default(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def test_unknown_name_lists_choices():
    with pytest.raises(distribute.StrategyError,
                       match="strategy 'horovod' unknown; choose one of auto, default, one_device"):
        distribute.get_strategy("horovod")


def test_multi_worker_without_tf_config_raises(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.StrategyError, match="needs the TF_CONFIG environment variable"):
        distribute.get_strategy("multi_worker")


@pytest.mark.parametrize("raw, match", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    (json.dumps({"cluster": {}}), "keys 'cluster' and 'task'"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
     "task type 'ps' is not in cluster jobs"),
])
def test_invalid_tf_config_raises(monkeypatch, raw, match):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(distribute.StrategyError, match=match):
        distribute.get_strategy("multi_worker")


def test_one_device_rejects_several_devices():
    with pytest.raises(distribute.StrategyError, match="takes one device"):
        distribute.get_strategy("one_device", devices=["/cpu:0", "/cpu:1"])


def test_a_strategy_is_created_once_per_process():
    """Variables are bound to the strategy object they were built under: with a second
    OneDeviceStrategy the optimizer refused the encoder's variables (colocate_vars_with)."""
    import keras
    with distribute.get_strategy("one_device").scope():
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    with distribute.get_strategy("one_device", devices=["/cpu:0"]).scope():
        optimizer = keras.optimizers.Adam()
        optimizer.build(layer.trainable_variables)
    assert len(optimizer.variables) > 2
    # "mirrored" without devices replicates over every logical CPU (two in the tests) and is the
    # same object as the one asked for by device names: two objects would share collective keys.
    mirrored = distribute.get_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2
    assert mirrored is distribute.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])


def test_split_cpu_devices_after_start_up_names_the_problem():
    with pytest.raises(distribute.StrategyError, match="before TensorFlow initializes its devices"):
        distribute.split_cpu_devices(3)
    distribute.split_cpu_devices(2)  # what the process already has: accepted
