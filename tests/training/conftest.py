"""Tiny models and datasets for the training tests."""
import keras
import numpy as np
import pytest
import tensorflow as tf


def build_mlp(num_features=8, num_classes=3, hidden=16, dropout=0.0):
    """Returns a functional MLP classifier taking {"features": [B, num_features]}."""
    inputs = {"features": keras.Input((num_features,), name="features")}
    hidden_out = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs["features"])
    if dropout:
        hidden_out = keras.layers.Dropout(dropout, name="dropout")(hidden_out)
    logits = keras.layers.Dense(num_classes, name="head", dtype="float32")(hidden_out)
    return keras.Model(inputs, logits, name="mlp")


def make_classification_arrays(num_examples=96, num_features=8, num_classes=3, seed=0):
    """Returns (features float32 [N, F], labels int32 [N]) that a linear model can separate."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_examples, num_features)).astype("float32")
    weights = rng.normal(size=(num_features, num_classes)).astype("float32")
    labels = np.argmax(features @ weights, axis=-1).astype("int32")
    return features, labels


def make_dataset(features, labels, batch_size, shuffle_seed=None, sample_weight=None):
    """Returns a batched tf.data.Dataset of ({"features": x}, y[, w])."""
    parts = ({"features": features}, labels) if sample_weight is None else (
        {"features": features}, labels, sample_weight)
    dataset = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
    return dataset.batch(batch_size)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Restores the float32 policy after each test."""
    yield
    keras.mixed_precision.set_global_policy("float32")
