"""The top-layer-at-read-positions outputs equal the full encoder's, values and gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import build_bert_classifier, build_bert_encoder, build_bert_pretrainer
from tfmodels.models.encoder_outputs import PooledEncoderOutput, SequenceOutputAt

from model_test_data import MAX_LENGTH, VOCAB_SIZE

FEATURES = ("token_ids", "padding_mask", "segment_ids")


def _features(batch):
    return {key: batch[key] for key in FEATURES}


def _three_layer_encoder(dropout=0.0):
    keras.utils.set_random_seed(1)
    return build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE, max_sequence_length=MAX_LENGTH,
                              dropout=dropout, num_layers=3, hidden_dim=32, num_heads=4,
                              intermediate_dim=64)


def test_pooled_output_equals_full_encoder(text_batch):
    encoder = _three_layer_encoder()
    batch = _features(text_batch(batch_size=4, length=12))
    expected = encoder(batch)["pooled_output"]
    np.testing.assert_allclose(PooledEncoderOutput(encoder)(batch), expected, atol=1e-5)


def test_sequence_output_at_positions_equals_full_encoder(text_batch):
    encoder = _three_layer_encoder()
    batch = _features(text_batch(batch_size=3, length=10))
    # Row 1 is padded after 5 tokens: position 7 is padding, read all the same.
    positions = np.array([[0, 3, 9], [1, 4, 7], [2, 2, 5]], "int32")
    sequence = encoder(batch)["sequence_output"].numpy()
    expected = np.take_along_axis(sequence, positions[..., None], axis=1)
    np.testing.assert_allclose(SequenceOutputAt(encoder)(batch, positions), expected, atol=1e-5)


def _full_encoder_classifier(encoder, classifier):
    """The classifier's head on the unpruned encoder's pooled_output (the reference)."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in FEATURES}
    features = encoder(inputs)["pooled_output"]
    logits = classifier.get_layer("logits")(classifier.get_layer("head_dropout")(features))
    return keras.Model(inputs, logits)


def _gradients(model, batch, labels):
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(labels, model(batch, training=True),
                                                            from_logits=True)
    return {variable.path: gradient for variable, gradient in
            zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))}


def test_classifier_gradients_equal_full_encoder(text_batch):
    encoder = _three_layer_encoder()
    classifier = build_bert_classifier(encoder, num_classes=3, dropout=0.0)
    reference = _full_encoder_classifier(encoder, classifier)
    batch = _features(text_batch(batch_size=4, length=12))
    labels = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(classifier(batch), reference(batch), atol=1e-5)
    got, expected = _gradients(classifier, batch, labels), _gradients(reference, batch, labels)
    assert set(got) == set(expected) and len(got) == len(encoder.trainable_variables) + 2
    for path, gradient in expected.items():
        dense = tf.convert_to_tensor(gradient)  # embedding gradients are IndexedSlices
        np.testing.assert_allclose(tf.convert_to_tensor(got[path]), dense, atol=1e-5,
                                   err_msg=path)


def test_pretrainer_logits_equal_head_on_full_sequence(text_batch):
    encoder = _three_layer_encoder()
    model = build_bert_pretrainer(encoder)
    batch = text_batch(batch_size=3, length=10, num_masks=3)
    sequence = encoder(_features(batch))["sequence_output"]
    expected = model.mlm_head(sequence, batch["mask_positions"])
    np.testing.assert_allclose(model(batch), expected, atol=1e-5)


def test_dropout_is_active_in_training_only(text_batch):
    encoder = _three_layer_encoder(dropout=0.3)
    pooled = PooledEncoderOutput(encoder)
    batch = _features(text_batch(batch_size=2, length=8))
    inference = pooled(batch, training=False)
    np.testing.assert_allclose(inference, encoder(batch)["pooled_output"], atol=1e-5)
    assert not np.allclose(pooled(batch, training=True), inference, atol=1e-3)


def test_non_bert_encoder_is_rejected():
    with pytest.raises(ValueError, match="expected a keras_hub.models.BertBackbone"):
        PooledEncoderOutput(keras.layers.Dense(3))
