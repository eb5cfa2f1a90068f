"""Tests for the BERT encoder, classifier and masked-LM pretrainer builders."""
import keras
import keras_hub
import numpy as np
import pytest

from tfmodels.models import (BertPretrainer, build_bert_classifier, build_bert_encoder,
                             build_bert_pretrainer, build_mlp, find_encoder, with_encoder_dropout)

from model_test_data import MAX_LENGTH, VOCAB_SIZE


def test_encoder_is_backbone_with_variant_sizes():
    encoder = build_bert_encoder("mini", vocabulary_size=100, max_sequence_length=32)
    assert isinstance(encoder, keras_hub.models.BertBackbone)
    assert (encoder.num_layers, encoder.hidden_dim, encoder.num_heads,
            encoder.intermediate_dim) == (4, 256, 4, 1024)
    assert (encoder.vocabulary_size, encoder.max_sequence_length) == (100, 32)


def test_encoder_output_shapes(tiny_encoder, text_batch):
    outputs = tiny_encoder(text_batch())
    assert outputs["sequence_output"].shape == (3, 8, 32)
    assert outputs["pooled_output"].shape == (3, 32)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max_mean"])
def test_classifier_logits_shape_dtype_and_inputs(tiny_encoder, text_batch, pooling):
    model = build_bert_classifier(tiny_encoder, num_classes=4, pooling=pooling)
    assert sorted(model.input) == ["padding_mask", "segment_ids", "token_ids"]
    assert all(tensor.dtype == "int32" for tensor in model.input.values())
    logits = model(text_batch())
    assert logits.shape == (3, 4)
    assert logits.dtype == "float32"
    assert model.get_layer("logits").dtype == "float32"


def test_classifier_reads_segment_ids_for_sentence_pairs(tiny_encoder, text_batch):
    model = build_bert_classifier(tiny_encoder, num_classes=2)
    single = text_batch()
    pair = dict(single, segment_ids=np.concatenate(
        [np.zeros((3, 4), "int32"), np.ones((3, 4), "int32")], axis=1))
    assert not np.allclose(model(single), model(pair))


@pytest.mark.parametrize("pooling", ["mean", "max_mean"])
def test_mean_pooling_ignores_padding(tiny_encoder, text_batch, pooling):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling=pooling, dropout=0.0)
    batch = text_batch()
    changed = {key: value.copy() for key, value in batch.items()}
    changed["token_ids"][1, 5:] = 7  # only padded positions differ
    np.testing.assert_allclose(model(batch), model(changed), atol=1e-6)


def test_max_mean_features_are_max_then_mean_over_real_tokens(tiny_encoder, text_batch):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling="max_mean")
    batch = text_batch()
    features = keras.Model(model.input, model.get_layer("max_mean_pooling").output)(batch)
    sequence = np.asarray(tiny_encoder(batch)["sequence_output"])
    hidden = tiny_encoder.hidden_dim
    assert features.shape == (3, 2 * hidden)
    for row, mask in enumerate(batch["padding_mask"]):
        real = sequence[row][mask == 1]
        np.testing.assert_allclose(features[row, :hidden], real.max(axis=0), atol=1e-6)
        np.testing.assert_allclose(features[row, hidden:], real.mean(axis=0), atol=1e-6)


def test_pretrainer_logits_and_tied_projection(tiny_encoder, text_batch):
    model = build_bert_pretrainer(tiny_encoder)
    logits = model(text_batch(num_masks=2))
    assert logits.shape == (3, 2, VOCAB_SIZE)
    assert logits.dtype == "float32"
    assert model.mlm_head.token_embedding is tiny_encoder.token_embedding
    hidden = tiny_encoder.hidden_dim
    # Head adds a dense, a layer norm and an output bias; no second [H, V] matrix.
    head_params = hidden * hidden + hidden + 2 * hidden + VOCAB_SIZE
    assert model.count_params() == tiny_encoder.count_params() + head_params


@pytest.mark.parametrize("pooling", ["cls", "mean", "max_mean"])
def test_classifier_keras_round_trip(tiny_encoder, text_batch, round_trip, pooling):
    model = build_bert_classifier(tiny_encoder, num_classes=3, pooling=pooling)
    batch = text_batch()
    restored = round_trip(model)
    np.testing.assert_array_equal(model(batch), restored(batch))
    assert isinstance(find_encoder(restored), keras_hub.models.BertBackbone)


def test_pretrainer_keras_round_trip_keeps_tie(tiny_encoder, text_batch, round_trip):
    model = build_bert_pretrainer(tiny_encoder)
    batch = text_batch(num_masks=3)
    restored = round_trip(model)
    assert isinstance(restored, BertPretrainer)
    np.testing.assert_array_equal(model(batch), restored(batch))
    assert restored.mlm_head.token_embedding is find_encoder(restored).token_embedding
    assert restored.count_params() == model.count_params()


def test_config_round_trip(tiny_encoder, text_batch):
    classifier = build_bert_classifier(tiny_encoder, num_classes=3, pooling="mean")
    rebuilt = keras.Model.from_config(classifier.get_config())
    assert rebuilt.get_config() == classifier.get_config()
    assert rebuilt(text_batch()).shape == (3, 3)
    pretrainer = build_bert_pretrainer(tiny_encoder)
    rebuilt = BertPretrainer.from_config(pretrainer.get_config())
    assert rebuilt.get_config() == pretrainer.get_config()
    encoder_config = tiny_encoder.get_config()
    assert keras_hub.models.BertBackbone.from_config(encoder_config).get_config() == encoder_config


def test_find_encoder_by_type(tiny_encoder):
    classifier = build_bert_classifier(tiny_encoder, num_classes=2)
    assert find_encoder(classifier) is tiny_encoder
    assert find_encoder(build_bert_pretrainer(tiny_encoder)) is tiny_encoder
    assert find_encoder(tiny_encoder) is tiny_encoder
    with pytest.raises(ValueError, match="holds 0 BertBackbone layers"):
        find_encoder(build_mlp((4,), [8], num_classes=2))


def test_with_encoder_dropout_changes_the_rate_inside_and_keeps_the_weights(tiny_encoder, text_batch):
    batch = text_batch()
    copy = with_encoder_dropout(tiny_encoder, 0.5)
    assert copy.dropout == 0.5 and tiny_encoder.dropout == 0.0
    for kept, copied in zip(tiny_encoder.weights, copy.weights, strict=True):
        assert kept.path == copied.path
        np.testing.assert_array_equal(kept.numpy(), copied.numpy())
    inference = tiny_encoder(batch)["sequence_output"]
    np.testing.assert_allclose(copy(batch)["sequence_output"], inference, atol=1e-6)
    np.testing.assert_allclose(tiny_encoder(batch, training=True)["sequence_output"], inference, atol=1e-6)
    changed = np.abs(copy(batch, training=True)["sequence_output"] - inference).max()
    assert changed > 0.1, "training=True drops units at the new rate"
    assert with_encoder_dropout(tiny_encoder, 0.0) is tiny_encoder
    with pytest.raises(ValueError, match=r"dropout=1.0 is invalid; expected a float in \[0, 1\)"):
        with_encoder_dropout(tiny_encoder, 1.0)


def test_mixed_bfloat16_dtypes(bf16_policy, text_batch):
    encoder = build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE,
                                 max_sequence_length=MAX_LENGTH, hidden_dim=32,
                                 num_heads=2, intermediate_dim=64)
    classifier = build_bert_classifier(encoder, num_classes=2, pooling="mean")
    pretrainer = build_bert_pretrainer(encoder)
    assert encoder.compute_dtype == "bfloat16"
    assert encoder(text_batch())["sequence_output"].dtype == "bfloat16"
    assert {variable.dtype for variable in pretrainer.weights} == {"float32"}
    assert classifier(text_batch()).dtype == "float32"
    assert pretrainer(text_batch(num_masks=2)).dtype == "float32"


@pytest.mark.parametrize("kwargs, match", [
    (dict(variant="huge", vocabulary_size=100), "variant 'huge' unknown; choose one of tiny"),
    (dict(vocabulary_size=100, hidden_dim=130, num_heads=4),
     "hidden_dim=130 is not divisible by num_heads=4"),
    (dict(vocabulary_size=3), "vocabulary_size=3 is invalid; expected an integer >= 6"),
    (dict(), "vocabulary_size is required"),
    (dict(vocabulary_size=100, max_sequence_length=0), "max_sequence_length=0 is invalid"),
    (dict(vocabulary_size=100, dropout=1.5),
     r"dropout=1.5 is invalid; expected a float in \[0, 1\)"),
    (dict(vocabulary_size=100, hidden_size=64),
     "encoder override 'hidden_size' unknown; choose from"),
])
def test_encoder_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_bert_encoder(**kwargs)


def test_classifier_bad_arguments(tiny_encoder):
    with pytest.raises(ValueError, match="num_classes=1 is invalid; expected an integer >= 2"):
        build_bert_classifier(tiny_encoder, num_classes=1)
    with pytest.raises(ValueError, match="pooling='max' unknown; choose one of cls, mean, max_mean$"):
        build_bert_classifier(tiny_encoder, num_classes=2, pooling="max")
    with pytest.raises(ValueError, match="encoder=Sequential is invalid"):
        build_bert_classifier(keras.Sequential(), num_classes=2)
    with pytest.raises(ValueError, match="encoder=Sequential is invalid"):
        build_bert_pretrainer(keras.Sequential())
