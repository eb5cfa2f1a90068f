"""BERT encoder outputs that compute the top transformer layer only where it is read.

A classifier reads the encoder's top layer at one position ([CLS], through the pooler) and
the masked-LM head at the masked positions (about 15% of them); the rest of the top layer's
output is thrown away. Below the top layer every position is needed (the top layer's keys
and values), but in the top layer itself only the attention keys and values need all
positions: its queries, attention output, feed-forward block and layer norms can run on the
read positions alone. For BERT-mini at length 128 that skips about 20% of a training step's
work, and the outputs are those of the full encoder (same layers, same weights, same
numbers up to float rounding).

The layers here wrap a `keras_hub.models.BertBackbone` and call its own sublayers, so the
weights stay in the backbone: presets, checkpoints, `find_encoder`, freezing and LoRA see
the same encoder as before. The top layer's pieces are keras-hub `TransformerEncoder`
attributes (private, of the pinned keras-hub); tests/models/test_encoder_outputs.py compares
values and gradients with the full encoder, so a keras-hub change that breaks this shows there.
"""
from __future__ import annotations

import keras
import keras_hub

_ops = keras.ops


def _embeddings(encoder, inputs):
    """The backbone's embedding block: token + position + segment, layer norm, dropout."""
    tokens = encoder.token_embedding(inputs["token_ids"])
    x = encoder.embeddings_add((tokens, encoder.position_embedding(tokens),
                                encoder.segment_embedding(inputs["segment_ids"])))
    return encoder.embeddings_dropout(encoder.embeddings_layer_norm(x))


def _below_top_layer(encoder, inputs):
    """Every position's hidden state entering the top transformer layer, [B, L, H]."""
    x = _embeddings(encoder, inputs)
    for layer in encoder.transformer_layers[:-1]:
        x = layer(x, padding_mask=inputs["padding_mask"])
    return x


def _top_layer_at(layer, x, padding_mask, query):
    """keras-hub `TransformerEncoder.call` (post-norm, as in BERT) for the rows `query` only.

    Args:
        layer: keras_hub.layers.TransformerEncoder. The top layer.
        x: [B, L, H] the layer's input at every position (attention keys and values).
        padding_mask: int [B, L]. 1 for real tokens.
        query: [B, P, H] the layer's input at the positions whose output is wanted.

    Returns:
        [B, P, H]: the layer's output at those positions.
    """
    # As keras-hub's merge_padding_and_attention_mask: [B, 1, L], broadcast over the queries.
    attention_mask = _ops.cast(_ops.expand_dims(padding_mask, axis=1), "int32")
    h = layer._self_attention_layer(query=query, value=x, attention_mask=attention_mask)
    h = layer._self_attention_layer_norm(layer._self_attention_dropout(h) + query)
    residual = h
    h = layer._feedforward_output_dense(layer._feedforward_intermediate_dense(h))
    return layer._feedforward_layer_norm(layer._feedforward_dropout(h) + residual)


def with_encoder_deserialized(config: dict) -> dict:
    """A copy of a layer/model config whose serialized "encoder" entry is rebuilt."""
    config = dict(config)
    if isinstance(config.get("encoder"), dict):
        config["encoder"] = keras.layers.deserialize(config["encoder"])
    return config


class _EncoderOutput(keras.layers.Layer):
    """Base: a layer holding (and serializing) a BertBackbone whose outputs it computes."""

    def __init__(self, encoder, **kwargs):
        if not isinstance(encoder, keras_hub.models.BertBackbone):
            raise ValueError(f"encoder={type(encoder).__name__} is invalid; expected a "
                             "keras_hub.models.BertBackbone")
        if any(layer.normalize_first for layer in encoder.transformer_layers):
            raise ValueError("encoder has pre-norm transformer layers (normalize_first=True); "
                             "expected BERT's post-norm layers")
        kwargs.setdefault("dtype", encoder.dtype_policy)
        super().__init__(**kwargs)
        self.encoder = encoder

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # the encoder's policy, restored with the encoder
        config["encoder"] = keras.layers.serialize(self.encoder)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**with_encoder_deserialized(config))


@keras.saving.register_keras_serializable(package="tfmodels")
class PooledEncoderOutput(_EncoderOutput):
    """The encoder's `pooled_output` [B, H], with the top layer computed at [CLS] only.

    Args:
        encoder: `keras_hub.models.BertBackbone`. Shared, not copied.
        **kwargs: standard layer arguments (name).

    Example:
        >>> encoder = build_bert_encoder("tiny", vocabulary_size=100, max_sequence_length=16)
        >>> pooled = PooledEncoderOutput(encoder)(batch)  # == encoder(batch)["pooled_output"]
    """

    def call(self, inputs):
        x = _below_top_layer(self.encoder, inputs)
        cls = _top_layer_at(self.encoder.transformer_layers[-1], x, inputs["padding_mask"],
                            x[:, :1, :])
        return self.encoder.pooled_dense(cls[:, 0, :])

    def compute_output_shape(self, input_shape):
        return (input_shape["token_ids"][0], self.encoder.hidden_dim)


@keras.saving.register_keras_serializable(package="tfmodels")
class SequenceOutputAt(_EncoderOutput):
    """The encoder's `sequence_output` at given positions [B, P, H], the top layer computed
    at those positions only.

    Args:
        encoder: `keras_hub.models.BertBackbone`. Shared, not copied.
        **kwargs: standard layer arguments (name).

    Example:
        >>> at = SequenceOutputAt(encoder)(batch, positions)  # int32 positions [B, P]
        >>> # == take_along_axis(encoder(batch)["sequence_output"], positions[..., None], 1)
    """

    def call(self, inputs, positions):
        x = _below_top_layer(self.encoder, inputs)
        query = _ops.take_along_axis(x, _ops.expand_dims(positions, axis=-1), axis=1)
        return _top_layer_at(self.encoder.transformer_layers[-1], x, inputs["padding_mask"],
                             query)

    def compute_output_shape(self, inputs_shape, positions_shape):
        return (*positions_shape, self.encoder.hidden_dim)


def wrapped_encoder(layer) -> keras_hub.models.BertBackbone | None:
    """The BertBackbone that `layer` is or computes outputs of, else None."""
    if isinstance(layer, keras_hub.models.BertBackbone):
        return layer
    if isinstance(layer, _EncoderOutput):
        return layer.encoder
    return None
