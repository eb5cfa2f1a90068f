"""Pieces shared by the model builders: argument checks, text inputs, classifier head."""
from __future__ import annotations

import keras

TEXT_INPUT_NAMES = ("token_ids", "padding_mask", "segment_ids")
# Layers that make up a classifier head; everything else is trunk/encoder.
HEAD_LAYER_NAMES = ("head_dropout", "logits", "mlm_head", "mlm_logits")


def check_int(name: str, value, minimum: int = 1) -> None:
    """Raises ValueError unless `value` is an integer >= `minimum`.

    Args:
        name: str. Argument name used in the message.
        value: the value to check.
        minimum: int. Smallest allowed value. Defaults to 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")


def check_dropout(dropout, name: str = "dropout") -> None:
    """Raises ValueError unless `dropout` is a rate in [0, 1).

    Args:
        dropout: the value to check.
        name: str. Argument name used in the message. Defaults to "dropout".
    """
    if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
            or not 0.0 <= dropout < 1.0):
        raise ValueError(f"{name}={dropout!r} is invalid; expected a float in [0, 1)")


def check_num_classes(num_classes) -> None:
    """Raises ValueError unless `num_classes` is an integer >= 2."""
    check_int("num_classes", num_classes, 2)


def text_inputs() -> dict:
    """Creates the three int32 [batch, length] text inputs of the batch contract."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in TEXT_INPUT_NAMES}


def classifier_head(features, num_classes: int, dropout: float,
                    kernel_initializer="glorot_uniform"):
    """Applies Dropout ("head_dropout") + float32 Dense ("logits") to trunk features.

    The fixed names let fine-tuning find the head and the trunk output.

    Args:
        features: KerasTensor. [B, D] features from the trunk/encoder.
        num_classes: int. Number of classes (>= 2).
        dropout: float. Dropout rate before the logits, in [0, 1).
        kernel_initializer: Keras initializer of the logits kernel.
            Defaults to "glorot_uniform".
    """
    check_num_classes(num_classes)
    check_dropout(dropout)
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    return keras.layers.Dense(num_classes, kernel_initializer=kernel_initializer,
                              dtype="float32", name="logits")(x)
