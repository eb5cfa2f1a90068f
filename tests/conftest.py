"""Test-wide set-up: quiet TensorFlow and two logical CPU devices for MirroredStrategy tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

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
