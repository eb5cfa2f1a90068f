"""Embedding + (bi)LSTM text classifier: the non-transformer baseline."""
from __future__ import annotations

import keras

from tfmodels.choices import LSTM_POOLINGS
from tfmodels.models.common import check_dropout, check_int, classifier_head, text_inputs


@keras.saving.register_keras_serializable(package="tfmodels")
class PaddingMaskToBool(keras.layers.Layer):
    """Turns an int padding_mask (1 = real token) into the boolean mask RNNs expect.

    Args:
        **kwargs: standard layer arguments (name, dtype).
    """

    def call(self, padding_mask):
        return keras.ops.not_equal(padding_mask, 0)

    def compute_output_spec(self, padding_mask):
        return keras.KerasTensor(padding_mask.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="tfmodels")
class MaskedSequencePooling(keras.layers.Layer):
    """Pools [B, L, D] LSTM outputs over real tokens (padding_mask == 1), in float32.

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


def build_lstm_classifier(
    vocabulary_size: int,
    num_classes: int,
    embedding_dim: int = 128,
    units: int = 128,
    bidirectional: bool = True,
    dropout: float = 0.1,
    pooling: str = "last",
    name: str = "lstm_classifier",
) -> keras.Model:
    """Builds an embedding → (bi)LSTM → pooling → dense text classifier.

    Takes the same inputs as the BERT classifier; padded positions
    (padding_mask == 0) are skipped by the LSTM and the pooling; segment_ids are
    accepted and ignored.

    Args:
        vocabulary_size: int. Token vocabulary size (>= 2).
        num_classes: int. Number of classes (>= 2).
        embedding_dim: int. Token embedding width. Defaults to 128.
        units: int. LSTM units per direction. Defaults to 128.
        bidirectional: bool. Read the text in both directions. Defaults to True.
        dropout: float. Dropout on embeddings and before the logits. Defaults to 0.1.
        pooling: str. "last": the final state (of each direction); "max", "mean" or
            "max_mean" (both, concatenated): over the LSTM outputs at every real token.
            Defaults to "last".
        name: str. Model name. Defaults to "lstm_classifier".

    Returns:
        A functional model mapping {token_ids, padding_mask, segment_ids}
        (int32 [B, L]) to float32 logits [B, num_classes].

    Example:
        >>> model = build_lstm_classifier(vocabulary_size=1000, num_classes=2, units=32)
    """
    check_int("vocabulary_size", vocabulary_size, 2)
    check_int("embedding_dim", embedding_dim)
    check_int("units", units)
    check_dropout(dropout)
    if pooling not in LSTM_POOLINGS:
        raise ValueError(f"pooling={pooling!r} unknown; choose one of {', '.join(LSTM_POOLINGS)}")
    inputs = text_inputs()
    mask = PaddingMaskToBool(name="trunk_mask")(inputs["padding_mask"])
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="trunk_embedding")(
        inputs["token_ids"])
    x = keras.layers.Dropout(dropout, name="trunk_embedding_dropout")(x)
    lstm = keras.layers.LSTM(units, return_sequences=pooling != "last", name="trunk_lstm")
    if bidirectional:
        lstm = keras.layers.Bidirectional(lstm, name="trunk_bilstm")
    x = lstm(x, mask=mask)
    if pooling != "last":
        modes = ("max", "mean") if pooling == "max_mean" else (pooling,)
        x = MaskedSequencePooling(modes, name="trunk_pooling")(x, inputs["padding_mask"])
    logits = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs=inputs, outputs=logits, name=name)
