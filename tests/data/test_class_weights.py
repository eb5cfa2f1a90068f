"""Class weights for imbalanced labels: resolution, per-example weights, config validation."""
import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from tfmodels.config import ConfigError, load_config
from tfmodels.data.class_weights import resolve_class_weights, weight_by_class

NAMES = ["negative", "neutral", "positive"]
LABELS = np.array([0] * 6 + [1] * 1 + [2] * 3)


def test_balanced_matches_sklearn_and_keeps_the_mean_weight_at_one():
    weights = resolve_class_weights("balanced", LABELS, NAMES)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=LABELS)
    np.testing.assert_allclose([weights[name] for name in NAMES], expected)
    assert np.mean([weights[NAMES[label]] for label in LABELS]) == pytest.approx(1.0)


def test_balanced_gives_an_absent_class_weight_one():
    weights = resolve_class_weights("balanced", [0, 0, 2], NAMES)
    assert weights["neutral"] == 1.0
    assert weights["negative"] == pytest.approx(3 / (2 * 2))


def test_mapping_sets_named_labels_and_leaves_the_others_at_one():
    assert resolve_class_weights({"neutral": 4, "positive": 0.5}, LABELS, NAMES) == {
        "negative": 1.0, "neutral": 4.0, "positive": 0.5}
    assert resolve_class_weights(None, LABELS, NAMES) is None


@pytest.mark.parametrize("spec, message", [
    ({"postive": 2.0}, "label 'postive' is not in the training labels; choose from negative"),
    ({"positive": 0}, r"data.class_weights.positive=0 invalid; use a finite number > 0"),
    ({"positive": float("nan")}, "finite number > 0"),
    ("inverse", "use 'balanced' or a mapping"),
])
def test_bad_class_weights_name_the_key_and_the_allowed_values(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_class_weights(spec, LABELS, NAMES)


def test_weight_by_class_adds_per_example_weights_by_label():
    dataset = tf.data.Dataset.from_tensor_slices(({"x": np.arange(10.0)}, LABELS)).batch(4)
    weights = {"negative": 0.5, "neutral": 5.0, "positive": 2.0}
    batches = list(weight_by_class(dataset, weights, NAMES))
    assert all(len(batch) == 3 for batch in batches)
    got = np.concatenate([batch[2].numpy() for batch in batches])
    np.testing.assert_allclose(got, [weights[NAMES[label]] for label in LABELS])
    assert weight_by_class(dataset, None, NAMES) is dataset


def test_config_accepts_balanced_and_mappings_with_label_keys():
    assert load_config(None, ["data.class_weights=balanced"]).data.class_weights == "balanced"
    config = load_config(None, ["data.class_weights={0: 2, 7: 0.5}"])
    assert config.data.class_weights == {"0": 2.0, "7": 0.5}
    assert load_config(None).data.class_weights is None


@pytest.mark.parametrize("value", ["inverse", "{a: -1}", "{a: x}", "[1, 2]"])
def test_config_rejects_bad_class_weights_naming_the_key(value):
    with pytest.raises(ConfigError, match="data.class_weights"):
        load_config(None, [f"data.class_weights={value}"])
