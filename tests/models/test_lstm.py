"""Tests for the (bi)LSTM text classifier."""
import keras
import numpy as np
import pytest

from tfmodels.models import build_lstm_classifier
from tfmodels.models.lstm import MaskedSequencePooling

from model_test_data import VOCAB_SIZE


@pytest.mark.parametrize("bidirectional", [True, False])
def test_logits_shape_and_dtype(text_batch, bidirectional):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=3, embedding_dim=8, units=4,
                                  bidirectional=bidirectional)
    assert sorted(model.input) == ["padding_mask", "segment_ids", "token_ids"]
    logits = model(text_batch())
    assert logits.shape == (3, 3)
    assert logits.dtype == "float32"
    width = 8 if bidirectional else 4
    assert model.get_layer("logits").kernel.shape == (width, 3)


def test_padding_is_masked(text_batch):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=2, embedding_dim=8, units=4, dropout=0.0)
    batch = text_batch()
    changed = {key: value.copy() for key, value in batch.items()}
    changed["token_ids"][1, 5:] = 9  # only padded positions differ
    np.testing.assert_allclose(model(batch), model(changed), atol=1e-6)
    changed["token_ids"][1, 0] = 9  # a real token differs
    assert not np.allclose(model(batch)[1], model(changed)[1])


@pytest.mark.parametrize("pooling, width", [("max", 8), ("mean", 8), ("max_mean", 16)])
def test_pooling_over_every_output_ignores_padding(text_batch, pooling, width):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=2, embedding_dim=8, units=4, dropout=0.0,
                                  pooling=pooling)
    assert model.get_layer("logits").kernel.shape == (width, 2)
    batch = text_batch()
    changed = {key: value.copy() for key, value in batch.items()}
    changed["token_ids"][1, 5:] = 9  # only padded positions differ
    np.testing.assert_allclose(model(batch), model(changed), atol=1e-6)


def test_max_mean_pooling_values():
    pooling = MaskedSequencePooling(("max", "mean"))
    sequence = np.array([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]]], "float32")
    pooled = pooling(sequence, np.array([[1, 1, 0]], "int32"))
    np.testing.assert_allclose(pooled, [[3.0, -2.0, 2.0, -3.0]])
    np.testing.assert_allclose(pooling(sequence, np.zeros((1, 3), "int32")), [[0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("pooling", ["last", "max_mean"])
def test_round_trip_and_config(text_batch, round_trip, pooling):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=2, embedding_dim=8, units=4, pooling=pooling)
    batch = text_batch()
    np.testing.assert_array_equal(model(batch), round_trip(model)(batch))
    assert keras.Model.from_config(model.get_config()).get_config() == model.get_config()


def test_mixed_bfloat16(bf16_policy, text_batch):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=2, embedding_dim=8, units=4)
    assert model.get_layer("trunk_embedding").compute_dtype == "bfloat16"
    assert {variable.dtype for variable in model.weights} == {"float32"}
    assert model(text_batch()).dtype == "float32"


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocabulary_size=1), "vocabulary_size=1 is invalid; expected an integer >= 2"),
    (dict(num_classes=0), "num_classes=0 is invalid"),
    (dict(units=0), "units=0 is invalid"),
    (dict(dropout=1.0), "dropout=1.0 is invalid"),
    (dict(pooling="attention"), "pooling='attention' unknown; choose one of last, max, mean, max_mean"),
])
def test_bad_arguments(kwargs, match):
    arguments = dict(vocabulary_size=VOCAB_SIZE, num_classes=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_lstm_classifier(**arguments)
