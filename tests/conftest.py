"""Test-wide set-up: quiet TensorFlow and two logical CPU devices for MirroredStrategy tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
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


@pytest.fixture(autouse=True)
def _float32_policy_after():
    """Sets Keras's global dtype policy back to float32 after a test that changed it. It is
    process-wide: a run started from a config sets it (`tfmodels.training.apply_precision`), and with
    `precision: auto` on a CPU with AVX512-BF16 that is mixed_bfloat16, which every later test of that
    pytest worker would then build its models in (a float32 test failed on bfloat16 rounding)."""
    yield
    if keras.config.dtype_policy().name != "float32":
        keras.config.set_dtype_policy("float32")
