"""BERT encoder, classifier and masked-LM pretrainer (functional Keras).

The encoder is a `keras_hub.models.BertBackbone`, so weights are interchangeable
with keras-hub presets and Hugging Face BERT checkpoints.
"""
from __future__ import annotations

import keras
import keras_hub

from tfmodels.choices import POOLINGS as POOLING_MODES
from tfmodels.models.common import (TEXT_INPUT_NAMES, MaskedSequencePooling, check_dropout,
                                     check_int, classifier_head, pooling_modes, text_inputs)
from tfmodels.models.encoder_outputs import (PooledEncoderOutput, SequenceOutputAt,
                                             with_encoder_deserialized, wrapped_encoder)
from tfmodels.models.variants import get_variant

# Smallest vocabulary that holds [PAD], [UNK], [CLS], [SEP], [MASK] and one word.
MIN_VOCABULARY_SIZE = 6
ENCODER_OVERRIDES = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim",
                     "num_segments", "dtype")


def _bert_initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)


def build_bert_encoder(
    variant: str = "mini",
    vocabulary_size: int | None = None,
    max_sequence_length: int = 512,
    dropout: float = 0.1,
    **overrides,
) -> keras_hub.models.BertBackbone:
    """Builds a randomly initialized BERT encoder of a named size.

    Args:
        variant: str. A key of `VARIANTS`: tiny, mini, small, medium, base, large.
            Defaults to "mini".
        vocabulary_size: int. Token vocabulary size (>= 6). Required.
        max_sequence_length: int. Number of position embeddings. Defaults to 512.
        dropout: float. Dropout rate inside the encoder, in [0, 1). Defaults to 0.1.
        **overrides: replace a size of the variant or pass through to the
            backbone: num_layers, hidden_dim, num_heads, intermediate_dim,
            num_segments, dtype.

    Returns:
        A `keras_hub.models.BertBackbone` with inputs token_ids, segment_ids,
        padding_mask and outputs sequence_output [B, L, H], pooled_output [B, H].

    Example:
        >>> encoder = build_bert_encoder("tiny", vocabulary_size=1000,
        ...                              max_sequence_length=64)
        >>> encoder.num_layers
        2
    """
    sizes = get_variant(variant).as_kwargs()
    unknown = sorted(set(overrides) - set(ENCODER_OVERRIDES))
    if unknown:
        raise ValueError(f"encoder override {unknown[0]!r} unknown; choose from "
                         f"{', '.join(ENCODER_OVERRIDES)}")
    sizes.update(overrides)
    dtype = sizes.pop("dtype", None)
    num_segments = sizes.pop("num_segments", 2)
    if vocabulary_size is None:
        raise ValueError("vocabulary_size is required; pass the size of the vocabulary (>= 6)")
    check_int("vocabulary_size", vocabulary_size, MIN_VOCABULARY_SIZE)
    check_int("max_sequence_length", max_sequence_length)
    check_int("num_segments", num_segments)
    for key in ("num_layers", "hidden_dim", "num_heads", "intermediate_dim"):
        check_int(key, sizes[key])
    if sizes["hidden_dim"] % sizes["num_heads"]:
        raise ValueError(
            f"hidden_dim={sizes['hidden_dim']} is not divisible by "
            f"num_heads={sizes['num_heads']}; choose a multiple of num_heads")
    check_dropout(dropout)
    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        max_sequence_length=max_sequence_length,
        num_segments=num_segments,
        dropout=dropout,
        dtype=dtype,
        **sizes,
    )


def with_encoder_dropout(encoder: keras_hub.models.BertBackbone,
                         dropout: float) -> keras_hub.models.BertBackbone:
    """Returns the encoder with dropout rate `dropout` inside it and the same weights.

    A loaded encoder keeps the rate it was saved with; fine-tuning at another rate needs
    a copy built with that rate (the backbone's dropout layers take it at construction).

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder (e.g. `load_encoder(...).encoder`).
        dropout: float. The rate wanted, in [0, 1).

    Returns:
        `encoder` itself when it already has that rate, else a new `BertBackbone` with
        the same config and weights except the rate.
    """
    check_dropout(dropout)
    if encoder.dropout == dropout:
        return encoder
    copy = keras_hub.models.BertBackbone.from_config({**encoder.get_config(), "dropout": dropout})
    copy.set_weights(encoder.get_weights())
    return copy


@keras.saving.register_keras_serializable(package="tfmodels")
class MaskedMeanPooling(MaskedSequencePooling):
    """Averages token vectors over real tokens (padding_mask == 1): `MaskedSequencePooling`'s
    "mean" alone, kept as its own class so that saved mean-pooling classifiers load.

    Args:
        **kwargs: standard layer arguments (name, dtype).
    """

    def __init__(self, **kwargs):
        super().__init__(("mean",), **kwargs)

    def get_config(self):
        return {key: value for key, value in super().get_config().items() if key != "modes"}


def build_bert_classifier(
    encoder: keras_hub.models.BertBackbone,
    num_classes: int,
    dropout: float = 0.1,
    pooling: str = "cls",
    name: str = "bert_classifier",
) -> keras.Model:
    """Builds a sequence (or sentence-pair) classifier on a BERT encoder.

    Args:
        encoder: `keras_hub.models.BertBackbone`. Shared, not copied.
        num_classes: int. Number of classes (>= 2).
        dropout: float. Dropout before the logits. Defaults to 0.1.
        pooling: str. "cls" uses the encoder's pooled [CLS] output, with the top
            transformer layer computed at [CLS] only (`PooledEncoderOutput`); "mean"
            averages sequence_output over real tokens (better after masked-LM-only
            pretraining, which never trains [CLS] or the pooler); "max_mean" concatenates
            the maximum and the mean over real tokens ([B, 2H] features). Defaults to "cls".
        name: str. Model name. Defaults to "bert_classifier".

    Returns:
        A functional model mapping {token_ids, padding_mask, segment_ids}
        (int32 [B, L]) to float32 logits [B, num_classes].

    Example:
        >>> encoder = build_bert_encoder("tiny", vocabulary_size=100,
        ...                              max_sequence_length=16)
        >>> model = build_bert_classifier(encoder, num_classes=2, pooling="mean")
    """
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ValueError(f"encoder={type(encoder).__name__} is invalid; expected "
                         "a keras_hub.models.BertBackbone")
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling={pooling!r} unknown; choose one of {', '.join(POOLING_MODES)}")
    inputs = text_inputs()
    if pooling == "cls":
        features = PooledEncoderOutput(encoder, name="pooled_encoder_output")(inputs)
    else:
        pool = (MaskedMeanPooling(dtype=encoder.dtype_policy, name="mean_pooling") if pooling == "mean"
                else MaskedSequencePooling(pooling_modes(pooling), dtype=encoder.dtype_policy,
                                           name="max_mean_pooling"))
        features = pool(encoder(inputs)["sequence_output"], inputs["padding_mask"])
    logits = classifier_head(features, num_classes, dropout, _bert_initializer())
    return keras.Model(inputs=inputs, outputs=logits, name=name)


@keras.saving.register_keras_serializable(package="tfmodels")
class TiedMaskedLMHead(keras_hub.layers.MaskedLMHead):
    """keras-hub `MaskedLMHead` that also runs eagerly under mixed precision.

    The parent adds its float32 output bias to compute-dtype logits; eagerly
    (outside `tf.function`) under `mixed_bfloat16` the variable is not
    autocast there and the add fails. Casting explicitly fixes it; the weight
    layout is unchanged.
    """

    def call(self, inputs, mask_positions=None):
        """Logits at the masked positions.

        Args:
            inputs: [B, L, H] sequence output, or [B, P, H] already taken at the masked
                positions when mask_positions is None.
            mask_positions: int [B, P] or None.
        """
        x = inputs
        if mask_positions is not None:
            positions = keras.ops.expand_dims(mask_positions, axis=-1)
            x = keras.ops.take_along_axis(inputs, positions, axis=1)
        x = self._intermediate_layer_norm(self._intermediate_dense(x))
        if self.token_embedding:
            outputs = self.token_embedding(x, reverse=True)
        else:
            outputs = keras.ops.matmul(x, self._kernel)
        outputs = keras.ops.cast(outputs, self.compute_dtype)
        outputs = outputs + keras.ops.cast(self._bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, inputs_shape, mask_positions_shape=None):
        rows = inputs_shape[:-1] if mask_positions_shape is None else mask_positions_shape
        return (*rows, self.vocabulary_size)


@keras.saving.register_keras_serializable(package="tfmodels")
class BertPretrainer(keras.Model):
    """Masked-LM pretrainer: encoder + MLM head tied to the token embedding.

    The encoder's top layer is computed at the masked positions only (`SequenceOutputAt`).

    A functional model subclass so that reloading rebuilds the head around the
    reloaded encoder's token embedding and the tie survives `.keras` round trips.

    Args:
        encoder: `keras_hub.models.BertBackbone`.
        name: str. Model name.
    """

    def __init__(self, encoder, name="bert_pretrainer", **kwargs):
        inputs = text_inputs()
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32",
                                               name="mask_positions")
        head = TiedMaskedLMHead(
            token_embedding=encoder.token_embedding,
            intermediate_activation="gelu",
            kernel_initializer=_bert_initializer(),
            dtype=encoder.dtype_policy,
            name="mlm_head",
        )
        at_masks = SequenceOutputAt(encoder, name="sequence_output_at_masks")(
            {key: inputs[key] for key in TEXT_INPUT_NAMES}, inputs["mask_positions"])
        logits = head(at_masks)
        logits = keras.layers.Activation("linear", dtype="float32", name="mlm_logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
        self.encoder = encoder
        self.mlm_head = head

    def get_config(self):
        return {"encoder": keras.layers.serialize(self.encoder), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**with_encoder_deserialized(config))


def build_bert_pretrainer(encoder: keras_hub.models.BertBackbone,
                          name: str = "bert_pretrainer") -> keras.Model:
    """Builds the masked-LM pretrainer with an output projection tied to the embedding.

    Args:
        encoder: `keras_hub.models.BertBackbone`. Shared, not copied.
        name: str. Model name. Defaults to "bert_pretrainer".

    Returns:
        A model mapping {token_ids, padding_mask, segment_ids, mask_positions}
        (int32; mask_positions [B, P]) to float32 logits [B, P, vocabulary_size].
    """
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ValueError(f"encoder={type(encoder).__name__} is invalid; expected "
                         "a keras_hub.models.BertBackbone")
    return BertPretrainer(encoder, name=name)


def find_encoder(model: keras.Model) -> keras_hub.models.BertBackbone:
    """Returns the BertBackbone inside a classifier or pretrainer (or the model itself).

    The encoder may be a layer of the model or wrapped by an `encoder_outputs` layer.

    Args:
        model: keras.Model. A model built by this module (or a BertBackbone).

    Raises:
        ValueError: the model holds no BertBackbone, or more than one.
    """
    if isinstance(model, keras_hub.models.BertBackbone):
        return model
    found = []
    for layer in model.layers:
        encoder = wrapped_encoder(layer)
        if encoder is not None and all(encoder is not seen for seen in found):
            found.append(encoder)
    if len(found) != 1:
        raise ValueError(f"model {model.name!r} holds {len(found)} BertBackbone layers; "
                         "expected exactly 1")
    return found[0]
