"""Tests for the (bi)LSTM text classifier."""
import keras
import numpy as np
import pytest

from tfmodels.models import build_lstm_classifier

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


def test_round_trip_and_config(text_batch, round_trip):
    model = build_lstm_classifier(VOCAB_SIZE, num_classes=2, embedding_dim=8, units=4)
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
])
def test_bad_arguments(kwargs, match):
    arguments = dict(vocabulary_size=VOCAB_SIZE, num_classes=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_lstm_classifier(**arguments)
