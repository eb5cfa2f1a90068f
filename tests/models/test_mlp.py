"""Tests for the MLP builder."""
import keras
import numpy as np
import pytest

from tfmodels.models import build_mlp


@pytest.mark.parametrize("hidden_units, expected_params", [
    ([256], 784 * 256 + 256 + 256 * 10 + 10),
    ([128, 64], 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10),
])
def test_classic_networks(hidden_units, expected_params):
    model = build_mlp((784,), hidden_units, num_classes=10, dropout=0.1)
    assert model.count_params() == expected_params
    logits = model({"features": np.zeros((2, 784), "float32")})
    assert logits.shape == (2, 10)
    assert logits.dtype == "float32"


def test_image_inputs_are_flattened_and_names_mark_trunk_and_head():
    model = build_mlp((28, 28, 1), [32], num_classes=10)
    assert list(model.input) == ["features"]
    assert model.input["features"].shape == (None, 28, 28, 1)
    assert model.get_layer("trunk_dense_0").kernel.shape == (784, 32)
    names = [layer.name for layer in model.layers]
    assert names == ["features", "trunk_flatten", "trunk_dense_0", "head_dropout", "logits"]


def test_round_trip_and_config(round_trip):
    model = build_mlp((8,), [16, 8], num_classes=3, dropout=0.2, activation="gelu")
    features = {"features": np.random.default_rng(0).normal(size=(4, 8)).astype("float32")}
    np.testing.assert_array_equal(model(features), round_trip(model)(features))
    rebuilt = keras.Model.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()


def test_mixed_bfloat16(bf16_policy):
    model = build_mlp((8,), [16], num_classes=3)
    assert model.get_layer("trunk_dense_0").compute_dtype == "bfloat16"
    assert {variable.dtype for variable in model.weights} == {"float32"}
    assert model({"features": np.ones((2, 8), "float32")}).dtype == "float32"


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_shape=(0,)), r"input_shape=\(0,\) is invalid; expected positive integer"),
    (dict(input_shape=()), r"input_shape=\(\) is invalid"),
    (dict(input_shape="784"), "input_shape='784' is invalid"),
    (dict(input_shape=(28, -1)), r"input_shape=\(28, -1\) is invalid"),
    (dict(hidden_units=[16, 0]), r"hidden_units\[1\]=0 is invalid"),
    (dict(num_classes=1), "num_classes=1 is invalid; expected an integer >= 2"),
    (dict(dropout=-0.1), "dropout=-0.1 is invalid"),
    (dict(activation="nope"), "activation='nope' unknown"),
])
def test_bad_arguments(kwargs, match):
    arguments = dict(input_shape=(8,), hidden_units=[16], num_classes=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_mlp(**arguments)


def test_mismatched_input_shape_is_rejected_at_call():
    model = build_mlp((8,), [16], num_classes=3)
    with pytest.raises(ValueError):
        model({"features": np.ones((2, 9), "float32")})
