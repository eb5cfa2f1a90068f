"""Fault injection: a second SIGTERM and a SIGINT arrive while the preemption checkpoint is written.

Imported before a binary runs (binary_server `prepare`, or `python -c`). The first checkpoint save
that happens after this process got SIGTERM sends the process SIGTERM and SIGINT before writing.
"""
import os
import signal

import tensorflow as tf

from tfmodels.training import preemption

_original_save = tf.train.CheckpointManager.save
_original_handler = preemption.SignalWatcher._on_sigterm
_state = {"sigterm": False, "fired": False}


def _on_sigterm(self, signum, frame):
    _state["sigterm"] = True
    _original_handler(self, signum, frame)


def _save_with_signals(self, checkpoint_number=None, **kwargs):
    if _state["sigterm"] and not _state["fired"]:
        _state["fired"] = True
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    return _original_save(self, checkpoint_number=checkpoint_number, **kwargs)


preemption.SignalWatcher._on_sigterm = _on_sigterm
tf.train.CheckpointManager.save = _save_with_signals
