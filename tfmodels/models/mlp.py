"""Multi-layer perceptron classifier with a named trunk and head."""
from __future__ import annotations

from typing import Sequence

import keras

from tfmodels.models.common import check_dropout, classifier_head

TRUNK_PREFIX = "trunk_"


def _check_input_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                            for d in shape):
        raise ValueError(f"input_shape={input_shape!r} is invalid; expected positive "
                         "integer dimensions without the batch, e.g. (784,) or (28, 28)")
    return shape


def build_mlp(
    input_shape: Sequence[int] | int,
    hidden_units: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
    activation: str = "relu",
    name: str = "mlp",
) -> keras.Model:
    """Builds an MLP classifier; image-shaped inputs are flattened.

    Layers of the trunk are named "trunk_*"; the head is "head_dropout" +
    "logits", so fine-tuning can freeze the trunk or replace the head.

    Args:
        input_shape: tuple of int (or int). Shape of one example, e.g. (784,)
            or (28, 28, 1).
        hidden_units: sequence of int. Width of each hidden layer, e.g. [256]
            for 784→256→10 or [128, 64] for 784→128→64→10.
        num_classes: int. Number of classes (>= 2).
        dropout: float. Dropout after each hidden layer and before the logits,
            in [0, 1). Defaults to 0.0.
        activation: str. Keras activation name of the hidden layers. Defaults to "relu".
        name: str. Model name. Defaults to "mlp".

    Returns:
        A functional model mapping {"features": float32 [B, *input_shape]} to
        float32 logits [B, num_classes].

    Example:
        >>> model = build_mlp((28, 28), [128, 64], num_classes=10)
        >>> model.output_shape
        (None, 10)
    """
    shape = _check_input_shape(input_shape)
    units = list(hidden_units)
    for i, width in enumerate(units):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"hidden_units[{i}]={width!r} is invalid; expected an integer >= 1")
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError) as error:
        raise ValueError(f"activation={activation!r} unknown; use a Keras activation "
                         "name such as relu, gelu, tanh") from error
    inputs = {"features": keras.Input(shape=shape, dtype="float32", name="features")}
    x = inputs["features"]
    if len(shape) > 1:
        x = keras.layers.Flatten(name=f"{TRUNK_PREFIX}flatten")(x)
    check_dropout(dropout)
    for i, width in enumerate(units):
        if i and dropout:
            x = keras.layers.Dropout(dropout, name=f"{TRUNK_PREFIX}dropout_{i - 1}")(x)
        x = keras.layers.Dense(width, activation=activation, name=f"{TRUNK_PREFIX}dense_{i}")(x)
    # head_dropout acts as the dropout after the last hidden layer.
    logits = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs=inputs, outputs=logits, name=name)

