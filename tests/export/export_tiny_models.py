"""Tiny stand-in models and a tiny Chinese vocabulary for the export tests."""
import os

import keras
import keras_hub
import numpy as np

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHINESE_CHARS = list("我你他的是不了很好坏喜欢讨厌电影书这个真太")
CLASS_NAMES = ["negative", "positive"]
SEQUENCE_LENGTH = 12
TOKEN_INPUT_NAMES = ("token_ids", "padding_mask", "segment_ids")
# Held-out texts for the export's fresh-process verification: Chinese, empty, punctuation,
# Latin WordPieces, over-long (truncated) and unknown characters.
VERIFY_TEXTS = ["我喜欢这个电影", "", "这个电影太坏了!", "Good movies.", "很" * 40, "unknown 字 ☃"]


def write_vocab(directory):
    """Writes vocab.txt (special tokens, Chinese chars, a few Latin pieces) and returns its path.

    Args:
        directory: str. Destination directory.
    """
    path = os.path.join(directory, "vocab.txt")
    tokens = SPECIAL_TOKENS + CHINESE_CHARS + ["good", "bad", "movie", "##s", "!", "."]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return path


def vocabulary_size():
    """Returns the number of tokens write_vocab writes."""
    return len(SPECIAL_TOKENS) + len(CHINESE_CHARS) + 6


def build_encoder(seed=0):
    """Returns a 1-layer keras_hub BertBackbone with hidden size 16.

    Args:
        seed: int. Initialization seed.
    """
    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=SEQUENCE_LENGTH, name="encoder")


def build_classifier(num_classes=len(CLASS_NAMES), seed=0, dtype=None):
    """Returns a functional classifier: token dict → BertBackbone → mean pooling → Dense logits.

    Args:
        num_classes: int. Number of logits. Defaults to 2.
        seed: int. Initialization seed.
        dtype: str or None. Keras dtype policy for all layers (e.g. "mixed_bfloat16").
    """
    previous = keras.config.dtype_policy()
    if dtype:
        keras.config.set_dtype_policy(dtype)
    try:
        encoder = build_encoder(seed)
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in TOKEN_INPUT_NAMES}
        sequence = encoder(inputs)["sequence_output"]
        mask = keras.ops.expand_dims(keras.ops.cast(inputs["padding_mask"], sequence.dtype), -1)
        pooled = keras.ops.sum(sequence * mask, axis=1) / keras.ops.maximum(
            keras.ops.sum(mask, axis=1), 1.0)
        # Large head weights so the probabilities differ visibly across inputs.
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits",
                                    kernel_initializer=keras.initializers.RandomNormal(
                                        stddev=3.0, seed=seed))(pooled)
        return keras.Model(inputs, logits, name="tiny_classifier")
    finally:
        keras.config.set_dtype_policy(previous)


def build_mlp(num_features=4, num_classes=3, seed=0):
    """Returns a functional MLP: {"features": float32 [B, F]} → Dense → Dense logits.

    Args:
        num_features: int. Input width. Defaults to 4.
        num_classes: int. Number of logits. Defaults to 3.
        seed: int. Initialization seed.
    """
    keras.utils.set_random_seed(seed)
    inputs = {"features": keras.Input(shape=(num_features,), dtype="float32", name="features")}
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs["features"])
    logits = keras.layers.Dense(num_classes, name="logits")(hidden)
    return keras.Model(inputs, logits, name="tiny_mlp")


def mlp_normalization(num_features=4):
    """Returns (mean, std) with one constant feature (std 0).

    Args:
        num_features: int. Input width. Defaults to 4.
    """
    mean = np.arange(num_features, dtype=np.float32) * 10.0
    std = np.linspace(1.0, 5.0, num_features).astype(np.float32)
    std[-1] = 0.0
    return mean, std


def permissions_under_umask(tree):
    """The paths in `tree` (itself included) whose permissions differ from what a new directory or
    file gets under the process's umask: [] when a published export is as readable as any file."""
    umask = os.umask(0)
    os.umask(umask)
    wrong = [tree] if os.stat(tree).st_mode & 0o777 != 0o777 & ~umask else []
    for root, directories, files in os.walk(tree):
        for name, mode in [(d, 0o777) for d in directories] + [(f, 0o666) for f in files]:
            if os.stat(os.path.join(root, name)).st_mode & 0o777 != mode & ~umask:
                wrong.append(os.path.join(root, name))
    return wrong
