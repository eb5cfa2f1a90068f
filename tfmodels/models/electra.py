"""ELECTRA pretraining (Clark et al. 2020): replaced-token detection around a BERT encoder.

A small masked-LM generator predicts the masked tokens of a masked-LM batch; its predictions are
sampled (no gradient flows through the samples) and put in place of the masked tokens; the BERT
encoder (the discriminator, the one that is kept) then predicts for every real token whether it was
replaced. A sample equal to the original token counts as original, as in the paper.

The generator, as in the paper:
- shares the discriminator's embedding block (token, position and segment embeddings and their layer
  norm), so it reads the same token vectors, and projects them to its own width when that differs;
- has the encoder's depth and `generator_width` times its hidden size, attention heads and
  feed-forward size (at least 1 head, and a head count that divides the width);
- predicts with BERT's masked-LM head whose output projection is the shared token embedding
  (its dense layer maps the generator's width to the embedding width).

Sampling draws from the generator's softmax with TensorFlow's stateless categorical sampler, seeded
by a `keras.random.SeedGenerator` that is part of the model's state (so checkpoint and resume are
exact) and folded with the replica id (replicas draw different samples). With `training=False` the
seed is fixed, so evaluating the same data twice gives the same numbers.
"""
from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf
from keras_hub.src.utils.keras_utils import gelu_approximate  # BertBackbone's activation

from tfmodels.models.common import TEXT_INPUT_NAMES, check_int, text_inputs
from tfmodels.models.bert import TiedMaskedLMHead, _bert_initializer
from tfmodels.models.encoder_outputs import _embeddings, with_encoder_deserialized

# The model's inputs: a masked-LM batch's features plus its targets (the original ids at the masked
# positions and their weights), from which the discriminator's input is built.
ELECTRA_INPUT_NAMES = (*TEXT_INPUT_NAMES, "mask_positions", "mask_ids", "mask_weights")
_EVALUATION_SEED = 1_000_003  # the second half of the fixed sampling seed when training=False


def generator_sizes(encoder: keras_hub.models.BertBackbone, width: float) -> dict:
    """The generator's transformer sizes for a fraction of the encoder's width.

    Args:
        encoder: `keras_hub.models.BertBackbone`. The discriminator.
        width: float. Fraction of the encoder's hidden size, in (0, 1].

    Returns:
        dict with num_layers (the encoder's), hidden_dim, num_heads (at least 1, dividing
        hidden_dim) and intermediate_dim, each `width` times the encoder's (rounded, at least 1).
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0.0 < width <= 1.0:
        raise ValueError(f"generator_width={width!r} is invalid; expected a fraction in (0, 1] of the "
                         "encoder's hidden size")
    hidden = max(1, round(encoder.hidden_dim * width))
    heads = max(1, min(hidden, round(encoder.num_heads * width)))
    while hidden % heads:
        heads -= 1
    return {"num_layers": encoder.num_layers, "hidden_dim": hidden, "num_heads": heads,
            "intermediate_dim": max(1, round(encoder.intermediate_dim * width))}


def scatter_at_positions(values, positions, weights, length):
    """Places per-prediction values at their sequence positions; returns (values [B, L], placed [B, L]).

    Args:
        values: int tensor [B, P]. One value per prediction.
        positions: int tensor [B, P]. Sequence positions of the predictions.
        weights: float tensor [B, P]. Predictions with weight 0 (padding) are not placed.
        length: int scalar tensor. L.
    """
    one_hot = tf.one_hot(positions, length, dtype=tf.int32) * tf.cast(weights > 0, tf.int32)[:, :, None]
    placed = tf.reduce_max(one_hot, axis=1)
    return tf.reduce_sum(one_hot * tf.cast(values, tf.int32)[:, :, None], axis=1), placed


@keras.saving.register_keras_serializable(package="tfmodels")
class ReplacedTokens(keras.layers.Layer):
    """Samples the generator at the masked positions and builds the discriminator's input.

    Args:
        seed: int or None. Seed of the sampling `SeedGenerator`. Defaults to None (drawn from
            Keras' global seed).
        **kwargs: standard layer arguments (name, dtype).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def _sampling_seed(self, training):
        """The int32 [2] stateless seed of this call: drawn from the state when training, else fixed."""
        if training:
            state = self.seed_generator.next()
            seed = tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)
        else:
            seed = tf.constant([self.seed or 0, _EVALUATION_SEED], tf.int32)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        return seed + tf.stack([0, tf.cast(replica, tf.int32)])

    def call(self, inputs, generator_logits, training=False):
        """Returns {"token_ids": the discriminator's input, "replaced": 1.0 where it differs from the original}.

        Args:
            inputs: dict of int32 tensors. token_ids, padding_mask [B, L]; mask_positions, mask_ids
                [B, P]; and float mask_weights [B, P].
            generator_logits: float tensor [B, P, V]. The generator's logits at the masked positions.
            training: bool. Draw from the seed state (True) or the fixed evaluation seed.
        """
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        logits = tf.cast(tf.stop_gradient(generator_logits), tf.float32)
        rows = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
        samples = tf.random.stateless_categorical(rows, 1, seed=self._sampling_seed(training), dtype=tf.int32)
        samples = tf.reshape(samples, tf.shape(inputs["mask_positions"]))
        length = tf.shape(token_ids)[1]
        weights, positions = inputs["mask_weights"], tf.cast(inputs["mask_positions"], tf.int32)
        sampled, placed = scatter_at_positions(samples, positions, weights, length)
        originals, _ = scatter_at_positions(inputs["mask_ids"], positions, weights, length)
        is_masked = placed > 0
        replaced_ids = tf.where(is_masked, sampled, token_ids)
        original_ids = tf.where(is_masked, originals, token_ids)
        real = tf.cast(inputs["padding_mask"], tf.bool)
        replaced = tf.logical_and(tf.not_equal(replaced_ids, original_ids), real)
        return {"token_ids": replaced_ids, "replaced": tf.cast(replaced, tf.float32)}

    def compute_output_spec(self, inputs, generator_logits, training=False):
        shape = inputs["token_ids"].shape
        return {"token_ids": keras.KerasTensor(shape, dtype="int32"),
                "replaced": keras.KerasTensor(shape, dtype="float32")}


def _generator_logits(encoder, inputs, sizes):
    """The generator's float32 logits [B, P, V] at the masked positions of the (masked) inputs."""
    x = _embeddings(encoder, inputs)  # the discriminator's embedding block, shared
    if sizes["hidden_dim"] != encoder.hidden_dim:
        x = keras.layers.Dense(sizes["hidden_dim"], kernel_initializer=_bert_initializer(),
                               dtype=encoder.dtype_policy, name="generator_embeddings_projection")(x)
    for i in range(sizes["num_layers"]):
        x = keras_hub.layers.TransformerEncoder(
            num_heads=sizes["num_heads"], intermediate_dim=sizes["intermediate_dim"],
            activation=gelu_approximate, dropout=encoder.dropout,
            layer_norm_epsilon=1e-12, kernel_initializer=_bert_initializer(), dtype=encoder.dtype_policy,
            name=f"generator_layer_{i}")(x, padding_mask=inputs["padding_mask"])
    head = TiedMaskedLMHead(token_embedding=encoder.token_embedding, intermediate_activation="gelu",
                            kernel_initializer=_bert_initializer(), dtype=encoder.dtype_policy,
                            name="generator_head")
    logits = head(x, mask_positions=inputs["mask_positions"])
    return keras.layers.Activation("linear", dtype="float32", name="generator_logits")(logits)


def _discriminator_logits(encoder, inputs):
    """The discriminator's float32 logits [B, L]: > 0 predicts that the token was replaced."""
    sequence = encoder({key: inputs[key] for key in TEXT_INPUT_NAMES})["sequence_output"]
    x = keras.layers.Dense(encoder.hidden_dim, activation="gelu", kernel_initializer=_bert_initializer(),
                           dtype=encoder.dtype_policy, name="discriminator_dense")(sequence)
    x = keras.layers.Dense(1, kernel_initializer=_bert_initializer(), dtype="float32",
                           name="discriminator_output")(x)
    return keras.layers.Reshape((-1,), dtype="float32", name="discriminator_logits")(x)


@keras.saving.register_keras_serializable(package="tfmodels")
class ElectraPretrainer(keras.Model):
    """ELECTRA pretrainer: generator + sampled replacement + the encoder as discriminator.

    Inputs (`ELECTRA_INPUT_NAMES`): a masked-LM batch's features (token_ids with [MASK] etc.,
    padding_mask, segment_ids, mask_positions) plus its targets mask_ids (original ids) and
    mask_weights (float32, 0 = padding prediction); `tfmodels.data.electra_dataset` adds them.
    Outputs (a dict, float32; what `tfmodels.training.objectives.Electra` reads): generator_logits
    [B, P, V], discriminator_logits [B, L], replaced [B, L] (1 where the discriminator's input
    differs from the original token) and discriminator_weights [B, L] (1 for real tokens).

    Args:
        encoder: `keras_hub.models.BertBackbone`. The discriminator; shared, not copied.
        generator_width: float. Generator hidden size as a fraction of the encoder's, in (0, 1].
            Defaults to 0.25.
        seed: int or None. Seed of the replacement sampling. Defaults to None.
        name: str. Model name. Defaults to "electra_pretrainer".
    """

    def __init__(self, encoder, generator_width=0.25, seed=None, name="electra_pretrainer", **kwargs):
        if not isinstance(encoder, keras_hub.models.BertBackbone):
            raise ValueError(f"encoder={type(encoder).__name__} is invalid; expected a "
                             "keras_hub.models.BertBackbone")
        sizes = generator_sizes(encoder, generator_width)
        inputs = text_inputs()
        for key in ("mask_positions", "mask_ids"):
            inputs[key] = keras.Input(shape=(None,), dtype="int32", name=key)
        inputs["mask_weights"] = keras.Input(shape=(None,), dtype="float32", name="mask_weights")
        generator_logits = _generator_logits(encoder, inputs, sizes)
        replacement = ReplacedTokens(seed, name="replaced_tokens")(inputs, generator_logits)
        discriminator_logits = _discriminator_logits(encoder, dict(inputs, token_ids=replacement["token_ids"]))
        weights = keras.layers.Activation("linear", dtype="float32", name="discriminator_weights")(
            keras.ops.cast(inputs["padding_mask"], "float32"))
        outputs = {"generator_logits": generator_logits, "discriminator_logits": discriminator_logits,
                   "replaced": replacement["replaced"], "discriminator_weights": weights}
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.encoder = encoder
        self.generator_width = generator_width
        self.seed = seed
        self.generator_config = sizes

    def get_config(self):
        return {"encoder": keras.layers.serialize(self.encoder), "generator_width": self.generator_width,
                "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**with_encoder_deserialized(config))


def build_electra_pretrainer(encoder: keras_hub.models.BertBackbone, generator_width: float = 0.25,
                             seed: int | None = None, name: str = "electra_pretrainer") -> keras.Model:
    """Builds the ELECTRA pretrainer around a BERT encoder (the discriminator that is kept).

    Args:
        encoder: `keras_hub.models.BertBackbone`. Shared, not copied.
        generator_width: float. Generator hidden size as a fraction of the encoder's, in (0, 1].
            Defaults to 0.25.
        seed: int or None. Seed of the replacement sampling. Defaults to None.
        name: str. Model name. Defaults to "electra_pretrainer".

    Returns:
        An `ElectraPretrainer` (see its docstring for inputs and outputs).

    Example:
        >>> encoder = build_bert_encoder("tiny", vocabulary_size=1000, max_sequence_length=64)
        >>> model = build_electra_pretrainer(encoder, generator_width=0.25, seed=1)
        >>> model.generator_config["hidden_dim"]
        32
    """
    if seed is not None:
        check_int("seed", seed, 0)
    return ElectraPretrainer(encoder, generator_width=generator_width, seed=seed, name=name)
