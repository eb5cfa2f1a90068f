"""Test-wide set-up: quiet TensorFlow and two logical CPU devices for MirroredStrategy tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import config as tf_config  # noqa: E402  (op determinism's off switch)

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialized by an earlier import
    pass


@pytest.fixture(scope="session")
def matrix_encoder_dir(tmp_path_factory):
    """The tiny pretrained encoder the strategy matrix's fine-tuning cells load."""
    from tests import strategy_matrix
    return strategy_matrix.pretrained_encoder(str(tmp_path_factory.mktemp("matrix_encoder")))


@pytest.fixture(autouse=True)
def _op_determinism_off_after():
    """Turns TensorFlow's op determinism off again after a test that turned it on. It is
    process-wide, so it used to stay on for every later test in that pytest worker, whose tf.data
    pipelines then run sequentially: 25% slower in our measurement. A run started from a config
    sets it itself (`tfmodels.training.determinism`); the exact-resume tests that drive the Trainer
    directly turn it on with TensorFlow's call, and TensorFlow exports only that switch."""
    yield
    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()
