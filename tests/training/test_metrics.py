import math

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from tfmodels.training import metrics


def test_streamed_confusion_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=50).astype("int32")
    logits = rng.normal(size=(50, 4)).astype("float32")
    predictions = logits.argmax(-1)
    accumulator = metrics.ClassificationMetrics(4)
    for start in range(0, 50, 16):
        batch = slice(start, start + 16)
        accumulator.update(metrics.confusion_matrix_batch(labels[batch], logits[batch], 4).numpy())
    result = accumulator.result()
    np.testing.assert_array_equal(result["confusion_matrix"],
                                  sk.confusion_matrix(labels, predictions, labels=range(4)))
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    for name, function in (("macro_precision", sk.precision_score), ("macro_recall", sk.recall_score),
                           ("macro_f1", sk.f1_score)):
        assert result[name] == pytest.approx(
            function(labels, predictions, average="macro", zero_division=0)), name


def test_masked_lm_sums_ignore_padding_predictions():
    labels = tf.constant([[1, 2], [0, 0]])
    logits = tf.constant([[[0.0, 5.0, 0.0], [0.0, 0.0, 5.0]],
                          [[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]]])
    weights = tf.constant([[1.0, 1.0], [1.0, 0.0]])
    nll, correct, weight = (float(v) for v in metrics.masked_lm_batch_sums(labels, logits, weights))
    assert weight == 3.0 and correct == 2.0
    accumulator = metrics.MaskedLMMetrics()
    accumulator.update(nll, correct, weight)
    result = accumulator.result()
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert result["accuracy"] == pytest.approx(2 / 3)
