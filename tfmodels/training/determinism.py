"""TensorFlow's op determinism, set from each run's config (`deterministic`), both ways.

Op determinism is process-wide, and TensorFlow's public API only turns it on. Left on, it slows
every later run of the process: tf.data then runs its parallel maps and prefetches in order (the
test suite measured 25%). So, as with the seed and the precision, each run's config decides: a run
with `deterministic: true` turns it on and a run with `deterministic: false` (the default) turns it
off, also when it was on from earlier in the process (a notebook, a test session, a script that
runs tasks one after another, or the user's own call), and logs that it did.
"""
import logging

import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config  # holds the only off switch

logger = logging.getLogger(__name__)


def apply_op_determinism(deterministic: bool) -> None:
    """Turns op determinism on or off for a run starting in this process.

    Args:
        deterministic: bool. The run's `deterministic` setting.
    """
    enabled = tf_framework_config.is_op_determinism_enabled()
    if deterministic and not enabled:
        tf.config.experimental.enable_op_determinism()
    elif enabled and not deterministic:
        tf_framework_config.disable_op_determinism()
        logger.info("op determinism turned off: it was on from earlier in this process and this "
                    "run has deterministic: false (set deterministic: true to keep it)")
