"""Fingerprints of saved encoders: a digest of what an encoder computes, not of where or when it
was saved. Resume checks compare a fine-tuning run's encoder by it (`tasks/resume_check.py`).

Kept free of TensorFlow and Keras imports, so a config is checked before they load.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

# Written anew each time a preset is saved, without changing what it computes.
_VOLATILE_JSON_KEYS = frozenset({"name", "date_saved"})


def encoder_fingerprint(path) -> str:
    """A digest of what a pretrained encoder computes: its weights, config and vocabulary.

    Equal for a copy or a move of the encoder, and for the same weights saved again (a keras-hub
    preset's `.h5` weights are read as arrays, its `.json` files without the layer names and the save
    date that change from save to save); different when any weight, setting or token differs.

    Args:
        path: str or Path. An encoder directory or file, in any format `load_encoder` reads.

    Returns:
        str: a SHA-256 hex digest.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        digest.update(_file_content_digest(file))
    return digest.hexdigest()


def _file_content_digest(file: Path) -> bytes:
    """The digest of what a file holds; of its bytes when it cannot be read as its kind (loading the
    encoder then reports the broken file)."""
    try:
        if file.suffix == ".h5":
            return _weights_digest(file)
        if file.suffix == ".json":
            content = _without_volatile_keys(json.loads(file.read_text(encoding="utf-8")))
            return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    except (OSError, ValueError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        pass
    return hashlib.sha256(file.read_bytes()).digest()


def _weights_digest(file: Path) -> bytes:
    import h5py  # here, so that checking a config stays free of heavy imports
    digest = hashlib.sha256()
    with h5py.File(file, "r") as weights:
        names = []
        weights.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        for name in sorted(names):
            value = np.asarray(weights[name][()])
            digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.digest()


def _without_volatile_keys(value):
    if isinstance(value, dict):
        return {k: _without_volatile_keys(v) for k, v in value.items() if k not in _VOLATILE_JSON_KEYS}
    if isinstance(value, list):
        return [_without_volatile_keys(v) for v in value]
    return value
