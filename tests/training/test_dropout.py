"""Fast dropout masks: rate, seeding, scaling, the layers switched, and saved models untouched."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp
from tfmodels.models import build_bert_classifier, build_bert_encoder
from tfmodels.training import keep_mask, use_fast_dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_mask_drops_the_rate_and_is_seeded(rate):
    seed = tf.constant([3, 4], tf.int32)
    mask = keep_mask([1001, 999], rate, seed).numpy()  # odd element count
    assert mask.shape == (1001, 999) and mask.dtype == bool
    assert 1 - mask.mean() == pytest.approx(rate, abs=0.003)
    np.testing.assert_array_equal(keep_mask([1001, 999], rate, seed).numpy(), mask)
    other = keep_mask([1001, 999], rate, tf.constant([3, 5], tf.int32)).numpy()
    assert (other != mask).mean() > 0.05
    flat = mask.ravel()[:-1].reshape(-1, 2)  # the two halves of one 32-bit draw
    assert np.logical_not(flat).all(axis=1).mean() == pytest.approx(rate ** 2, abs=0.004)


def test_switched_dropout_scales_survivors_and_is_identity_at_inference():
    layer = keras.layers.Dropout(0.25, seed=1)
    assert use_fast_dropout(layer) == 1 and use_fast_dropout(layer) == 1
    x = tf.ones([400, 500])
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.005)
    assert not np.array_equal(layer(x, training=True).numpy(), y)  # a new mask every call
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    mixed = keras.layers.Dropout(0.25, seed=1, dtype="mixed_bfloat16")
    use_fast_dropout(mixed)
    assert mixed(x, training=True).dtype == tf.bfloat16


def test_every_bert_dropout_is_switched_and_saved_models_are_untouched(tmp_path):
    encoder = build_bert_encoder("tiny", vocabulary_size=50, max_sequence_length=16)
    model = build_bert_classifier(encoder, num_classes=2)
    # embeddings + per layer: attention probabilities, attention output, feed-forward; + head
    assert use_fast_dropout(model) == 1 + 3 * encoder.num_layers + 1
    features = {"token_ids": np.full([2, 16], 7, "int32"), "padding_mask": np.ones([2, 16], "int32"),
                "segment_ids": np.zeros([2, 16], "int32")}
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(features).numpy(), model(features).numpy(), atol=1e-6)
    assert not any(getattr(layer, "_tfmodels_fast_dropout", False)
                   for layer in reloaded._flatten_layers())


def test_noise_shape_dropout_keeps_keras_masks():
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, keras.layers.Dropout(0.5, noise_shape=(None, 1, 3))(inputs))
    assert use_fast_dropout(model) == 0


def test_trainer_switches_unless_asked_not_to():
    from tfmodels.training import Trainer
    model = build_mlp(dropout=0.3)
    Trainer(model, verbose=0, fast_dropout=False)
    assert not getattr(model.get_layer("dropout"), "_tfmodels_fast_dropout", False)
    Trainer(model, verbose=0)
    assert model.get_layer("dropout")._tfmodels_fast_dropout
