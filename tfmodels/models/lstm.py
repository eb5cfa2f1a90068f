"""Embedding + (bi)LSTM text classifier: the non-transformer baseline."""
from __future__ import annotations

import keras

from tfmodels.choices import LSTM_POOLINGS
from tfmodels.models.common import (MaskedSequencePooling, check_dropout, check_int, classifier_head,
                                    pooling_modes, text_inputs)


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
        x = MaskedSequencePooling(pooling_modes(pooling), name="trunk_pooling")(x, inputs["padding_mask"])
    logits = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs=inputs, outputs=logits, name=name)
