"""Per-class loss weights for imbalanced labels (`data.class_weights`), as per-example weights.

`balanced` gives class c the weight n_examples / (n_classes * n_c) over the training labels
(scikit-learn's `compute_class_weight("balanced")`), so the mean weight over the training set
is 1 and the loss keeps its scale. A mapping `{label: weight}` sets weights by label name;
labels it leaves out weigh 1. Only the training dataset is weighted: validation and test
metrics stay plain counts.
"""
from __future__ import annotations

import math

import numpy as np

from tfmodels.config import ConfigError

BALANCED = "balanced"


def resolve_class_weights(spec, labels, label_names) -> dict[str, float] | None:
    """Returns {label name: weight} for every label, or None when no weighting is asked for.

    Args:
        spec: None, "balanced" or a dict {label name: weight > 0}. The `data.class_weights` value.
        labels: array-like of int [N]. Training label ids into `label_names`.
        label_names: list of str. The label vocabulary, in id order.

    Raises:
        ConfigError: an unknown label name, a weight that is not a finite number > 0, or a spec
            that is neither "balanced" nor a mapping.

    Example:
        >>> resolve_class_weights("balanced", [0, 0, 0, 1], ["neg", "pos"])
        {'neg': 0.6666666666666666, 'pos': 2.0}
    """
    if spec is None:
        return None
    names = [str(name) for name in label_names]
    if spec == BALANCED:
        return _balanced(np.asarray(labels, dtype=np.int64).reshape([-1]), names)
    if not isinstance(spec, dict):
        raise ConfigError(f"data.class_weights={spec!r} invalid; use '{BALANCED}' or a mapping "
                        "{label: weight}")
    weights = {name: 1.0 for name in names}
    for label, weight in spec.items():
        if str(label) not in weights:
            raise ConfigError(f"data.class_weights: label {label!r} is not in the training labels; "
                            f"choose from {', '.join(names)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
                math.isfinite(weight) and weight > 0):
            raise ConfigError(f"data.class_weights.{label}={weight!r} invalid; use a finite "
                            "number > 0")
        weights[str(label)] = float(weight)
    return weights


def _balanced(labels, names) -> dict[str, float]:
    counts = np.bincount(labels, minlength=len(names)).astype(np.float64)
    present = counts > 0
    # A class absent from training gets weight 1; it contributes no loss terms anyway.
    weights = np.ones(len(names), np.float64)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {name: float(weight) for name, weight in zip(names, weights)}


def weight_by_class(dataset, class_weights, label_names):
    """Returns a (features, labels) dataset as (features, labels, sample_weight) batches.

    Args:
        dataset: tf.data.Dataset. Yields (features, labels int [B]).
        class_weights: dict {label name: weight} or None. From `resolve_class_weights`; None
            returns `dataset` unchanged.
        label_names: list of str. The label vocabulary, in id order.
    """
    if class_weights is None:
        return dataset
    import tensorflow as tf

    table = tf.constant([class_weights[str(name)] for name in label_names], tf.float32)

    def add_weights(features, labels):
        return features, labels, tf.gather(table, tf.cast(labels, tf.int32))

    return dataset.map(add_weights, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
