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


def pooling_modes(pooling: str) -> tuple[str, ...]:
    """The `MaskedSequencePooling` modes of a pooling choice: "max_mean" → ("max", "mean")."""
    return ("max", "mean") if pooling == "max_mean" else (pooling,)


@keras.saving.register_keras_serializable(package="tfmodels")
class MaskedSequencePooling(keras.layers.Layer):
    """Pools [B, L, D] sequence outputs over real tokens (padding_mask == 1), in float32.

    The result has the layer's compute dtype.

    Args:
        modes: list of str. "max" and/or "mean"; several are concatenated in that order.
        **kwargs: standard layer arguments (name, dtype).
    """

    def __init__(self, modes=("max", "mean"), **kwargs):
        super().__init__(**kwargs)
        self.modes = list(modes)
        self.supports_masking = True  # the padding_mask input replaces the Keras mask

    def call(self, sequence, padding_mask, mask=None):
        real = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
        sequence = keras.ops.cast(sequence, "float32")
        pooled = []
        for mode in self.modes:
            if mode == "max":  # padded positions never win; a sequence without real tokens gives 0
                maximum = keras.ops.max(sequence * real - 1e9 * (1.0 - real), axis=1)
                pooled.append(maximum * keras.ops.minimum(keras.ops.sum(real, axis=1), 1.0))
            else:
                pooled.append(keras.ops.sum(sequence * real, axis=1)
                              / keras.ops.maximum(keras.ops.sum(real, axis=1), 1.0))
        return keras.ops.cast(keras.ops.concatenate(pooled, axis=-1), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1] * len(self.modes))

    def get_config(self):
        return {**super().get_config(), "modes": self.modes}
