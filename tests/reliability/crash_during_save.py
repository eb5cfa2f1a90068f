"""Fault injection: the process dies in the middle of writing checkpoint CRASH_AT_CHECKPOINT_STEP.

Imported before a binary runs. When the Trainer saves that step, the checkpoint's data and
index are written, then the data file is cut to half its size and a half-written temporary
shard is left beside it, as a kill during TensorFlow's write would leave them, and the
process SIGKILLs itself before the `checkpoint` state file names the new checkpoint.
"""
import glob
import os
import signal

import tensorflow as tf

CRASH_STEP = int(os.environ["CRASH_AT_CHECKPOINT_STEP"])
_original_save = tf.train.CheckpointManager.save


def _save_then_die(self, checkpoint_number=None, **kwargs):
    in_run_dir = os.path.abspath(self.directory) == os.path.abspath(os.environ["CRASH_MODEL_DIR"])
    if checkpoint_number != CRASH_STEP or not in_run_dir:
        return _original_save(self, checkpoint_number=checkpoint_number, **kwargs)
    prefix = self._checkpoint_prefix + f"-{checkpoint_number}"
    self._checkpoint.write(prefix)
    for data_file in glob.glob(prefix + ".data-*"):
        with open(data_file, "r+b") as f:
            f.truncate(os.path.getsize(data_file) // 2)
    os.makedirs(prefix + "_temp", exist_ok=True)
    with open(os.path.join(prefix + "_temp", "part-00000-of-00001.data-00000-of-00001.tempstate1"), "wb") as f:
        f.write(b"\0" * 17)
    os.kill(os.getpid(), signal.SIGKILL)


tf.train.CheckpointManager.save = _save_then_die
