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


# Tests that take 30 s or more in `make test` (pytest --durations, 2026-12-06), matched by function
# name. They are collected first, so that pytest-xdist, which hands each worker a contiguous share of
# the collection and lets an idle worker take tests from the end of another's queue, starts them
# early and ends the run on short tests instead of leaving one worker alone with a long one.
LONG_RUNNING_FIRST = (
    "test_a_run_directory_resumes_only_under_its_own_config_and_a_study_reuses_the_stages_that_match",
    "test_pretraining_without_dropout_saves_the_encoder_with_the_fine_tuning_dropout",
    "test_cell_trains_and_its_model_evaluates_exports_and_predicts",
    "test_sigterm_at_a_random_moment_then_rerun_matches_an_uninterrupted_run",
    "test_kill_9_resume_under_mirrored_and_float16_matches_an_uninterrupted_run",
    "test_workers_share_one_run_directory_and_end_with_identical_weights",
    "test_frozen_then_full_evaluates_every_n_steps_across_both_phases",
    "test_rerunning_a_run_under_a_changed_config_is_refused_and_a_raised_total_trains_on",
    "test_gradual_unfreezing_resumed_part_way_trains_the_layers_the_uninterrupted_run_did",
    "test_train_evaluate_export_predict_chain",
)


def pytest_collection_modifyitems(items):
    """Moves the `LONG_RUNNING_FIRST` tests to the front, in their listed order (a stable sort)."""
    rank = {name: i for i, name in enumerate(LONG_RUNNING_FIRST)}
    items.sort(key=lambda item: rank.get(getattr(item, "originalname", item.name), len(rank)))
