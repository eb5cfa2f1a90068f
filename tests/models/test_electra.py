"""Tests for the ELECTRA pretrainer: generator sizes and sharing, sampled replacement, gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import (ELECTRA_INPUT_NAMES, build_bert_encoder, build_electra_pretrainer, find_encoder,
                             generator_sizes)
from tfmodels.models.electra import ReplacedTokens
from tfmodels.training import get_strategy

from model_test_data import MAX_LENGTH, VOCAB_SIZE, make_text_batch

MASK_ID = 4


def electra_batch(num_masks=3, seed=0):
    """A text batch with [MASK] at positions 1..num_masks, their original ids and weights; row 1's
    last prediction is padding (weight 0, position 0, id 0), and row 1 is padded after 5 tokens."""
    batch = make_text_batch(num_masks=num_masks, seed=seed)
    batch["mask_ids"] = batch["token_ids"][:, 1:num_masks + 1].copy()
    batch["mask_weights"] = np.ones_like(batch["mask_ids"], "float32")
    batch["mask_positions"][1, -1], batch["mask_ids"][1, -1], batch["mask_weights"][1, -1] = 0, 0, 0.0
    for row in range(len(batch["token_ids"])):
        for position, weight in zip(batch["mask_positions"][row], batch["mask_weights"][row]):
            if weight:
                batch["token_ids"][row, position] = MASK_ID
    return batch


def generator_variables(model):
    return [v for v in model.trainable_variables if v.path.startswith("generator_")]


def test_generator_sizes_scale_width_heads_and_feed_forward(tiny_encoder):
    assert generator_sizes(tiny_encoder, 0.25) == {"num_layers": 2, "hidden_dim": 8, "num_heads": 1,
                                                   "intermediate_dim": 16}
    base = build_bert_encoder("base", vocabulary_size=100, max_sequence_length=8)
    assert generator_sizes(base, 1 / 3) == {"num_layers": 12, "hidden_dim": 256, "num_heads": 4,
                                            "intermediate_dim": 1024}
    assert generator_sizes(tiny_encoder, 0.2)["hidden_dim"] % generator_sizes(tiny_encoder, 0.2)["num_heads"] == 0
    for bad in (0.0, 1.5, "half", True):
        with pytest.raises(ValueError, match="generator_width"):
            generator_sizes(tiny_encoder, bad)


def test_outputs_inputs_and_the_shared_token_embedding(tiny_encoder):
    model = build_electra_pretrainer(tiny_encoder, generator_width=0.25, seed=1)
    assert sorted(model.input) == sorted(ELECTRA_INPUT_NAMES)
    outputs = model(electra_batch(), training=True)
    shapes = {name: (tuple(value.shape), value.dtype) for name, value in outputs.items()}
    assert shapes == {"generator_logits": ((3, 3, VOCAB_SIZE), tf.float32),
                      "discriminator_logits": ((3, 8), tf.float32),
                      "replaced": ((3, 8), tf.float32), "discriminator_weights": ((3, 8), tf.float32)}
    np.testing.assert_array_equal(outputs["discriminator_weights"], electra_batch()["padding_mask"])
    assert model.get_layer("generator_head").token_embedding is tiny_encoder.token_embedding
    embeddings = [v for v in model.weights if v.path.endswith("token_embedding/embeddings")]
    assert len(embeddings) == 1 and embeddings[0] is tiny_encoder.token_embedding.embeddings
    assert find_encoder(model) is tiny_encoder
    # The generator's own parameters: projection 32->8, two 8-wide layers, the head's 8->32 dense.
    assert model.get_layer("generator_embeddings_projection").kernel.shape == (32, 8)
    assert model.get_layer("generator_head")._intermediate_dense.kernel.shape == (8, 32)


def test_discriminator_loss_sends_no_gradient_into_the_generator(tiny_encoder):
    model = build_electra_pretrainer(tiny_encoder, seed=1)
    batch = electra_batch()
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(batch, training=True)
        discriminator_loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=outputs["replaced"], logits=outputs["discriminator_logits"]))
        generator_loss = -tf.reduce_sum(tf.nn.log_softmax(outputs["generator_logits"]) * tf.one_hot(
            batch["mask_ids"], VOCAB_SIZE))
    generator_only = generator_variables(model)
    assert len(generator_only) > 10
    for gradient in tape.gradient(discriminator_loss, generator_only):
        assert gradient is None or not np.any(tf.convert_to_tensor(gradient))
    assert all(g is not None for g in tape.gradient(generator_loss, generator_only))
    # The shared token embedding learns from both losses.
    table = tiny_encoder.token_embedding.embeddings
    for loss in (discriminator_loss, generator_loss):
        assert np.any(tf.convert_to_tensor(tape.gradient(loss, table)))


def replacement(generator_logits, batch, training=True, seed=3):
    layer = ReplacedTokens(seed)
    return layer(batch, tf.constant(generator_logits, tf.float32), training=training)


def test_a_sample_equal_to_the_original_counts_as_original():
    batch = electra_batch()
    confident = 30.0 * np.eye(VOCAB_SIZE, dtype="float32")[batch["mask_ids"]]  # predicts the originals
    result = replacement(confident, batch)
    assert not np.any(result["replaced"])
    original = batch["token_ids"].copy()
    for row in range(3):
        for position, token, weight in zip(batch["mask_positions"][row], batch["mask_ids"][row],
                                           batch["mask_weights"][row]):
            if weight:
                original[row, position] = token
    np.testing.assert_array_equal(result["token_ids"], original)


def test_samples_replace_only_real_masked_positions():
    batch = electra_batch()
    other = np.full(batch["mask_ids"].shape, 9)
    result = replacement(30.0 * np.eye(VOCAB_SIZE, dtype="float32")[other], batch)
    expected = np.zeros((3, 8), "float32")
    expected[:, 1:4] = (batch["mask_ids"] != 9)
    expected[1, 3] = 0.0  # row 1's third prediction is padding: position 0 untouched, nothing placed
    np.testing.assert_array_equal(result["replaced"], expected)
    np.testing.assert_array_equal(result["token_ids"][:, 0], batch["token_ids"][:, 0])
    assert result["token_ids"][1, 3] == batch["token_ids"][1, 3]  # not predicted: stays as input


def test_sampling_follows_the_seed_state_and_evaluation_is_fixed():
    batch = electra_batch()
    flat = np.zeros((3, 3, VOCAB_SIZE), "float32")
    layer = ReplacedTokens(seed=5)
    state = layer.seed_generator.state.numpy()
    first = layer(batch, flat, training=True)["token_ids"].numpy()
    second = layer(batch, flat, training=True)["token_ids"].numpy()
    assert not np.array_equal(first, second)
    layer.seed_generator.state.assign(state)  # what a checkpoint restores
    np.testing.assert_array_equal(layer(batch, flat, training=True)["token_ids"], first)
    evaluation = layer(batch, flat, training=False)["token_ids"].numpy()
    np.testing.assert_array_equal(layer(batch, flat, training=False)["token_ids"], evaluation)


def test_replicas_draw_different_samples():
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    batch = electra_batch()
    flat = np.zeros((3, 3, VOCAB_SIZE), "float32")
    with strategy.scope():
        layer = ReplacedTokens(seed=5)

    @tf.function
    def sample():
        return strategy.run(lambda: layer(batch, flat, training=True)["token_ids"])
    first, second = strategy.experimental_local_results(sample())
    assert not np.array_equal(first, second)


def test_bf16_outputs_are_float32_and_the_model_round_trips(bf16_policy, round_trip):
    encoder = build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE, max_sequence_length=MAX_LENGTH,
                                 dropout=0.0, hidden_dim=32, num_heads=2, intermediate_dim=64)
    model = build_electra_pretrainer(encoder, generator_width=0.5, seed=2)
    batch = electra_batch()
    outputs = model(batch, training=False)
    assert all(value.dtype == tf.float32 for value in outputs.values())
    reloaded = round_trip(model)
    assert reloaded.get_layer("generator_head").token_embedding is find_encoder(reloaded).token_embedding
    again = reloaded(batch, training=False)
    for name in outputs:
        np.testing.assert_allclose(again[name], outputs[name], atol=1e-6, err_msg=name)


def test_invalid_arguments_name_the_problem(tiny_encoder):
    with pytest.raises(ValueError, match="keras_hub.models.BertBackbone"):
        build_electra_pretrainer(keras.Sequential())
    with pytest.raises(ValueError, match="seed"):
        build_electra_pretrainer(tiny_encoder, seed=-1)
