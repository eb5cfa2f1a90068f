"""File access that serves local and remote run directories alike.

Local paths go through the `os` module; remote ones (`gs://...`, any `scheme://`) through
`tf.io.gfile`, imported only then. So the checks a binary makes on a local run directory before it
trains (`tfmodels.tasks.resume_check`) run before TensorFlow loads, and a bad command fails in a
second instead of after the 10-20 s TensorFlow takes to import.
"""
from __future__ import annotations

import os


def is_remote(path: str) -> bool:
    """Whether `path` names a remote file system location (scheme://...)."""
    return "://" in str(path)


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def exists(path: str) -> bool:
    """Whether a file or directory exists at `path`."""
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def open_file(path: str, mode: str = "r"):
    """Opens `path` as text (local files UTF-8) or, with "b" in `mode`, as bytes."""
    if is_remote(path):
        return _gfile().GFile(path, mode)
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8")


def walk(path: str):
    """(directory, subdirectories, files) for `path` and every directory under it, top-down."""
    return _gfile().walk(path) if is_remote(path) else os.walk(path)
