"""Classifier and masked-LM metrics built from per-batch sums that add up across replicas.

The Trainer computes the per-batch statistics below inside each replica, sums them across
replicas (and workers) with `strategy.reduce`, and streams them into the host-side accumulators.
"""
import math

import numpy as np
import tensorflow as tf


def confusion_matrix_batch(labels, logits, num_classes, sample_weight=None):
    """Returns the float32 [C, C] confusion matrix (rows = true, columns = predicted) of a batch.

    Args:
      labels: int tensor [B]. True class ids.
      logits: float tensor [B, C]. Classifier outputs.
      num_classes: int. C.
      sample_weight: float tensor [B] or None. Per-example weights. Defaults to None (all 1).
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    predictions = tf.argmax(tf.reshape(logits, [-1, num_classes]), axis=-1, output_type=tf.int32)
    weights = tf.ones_like(labels, tf.float32) if sample_weight is None else tf.reshape(
        tf.cast(sample_weight, tf.float32), [-1])
    one_hot_true = tf.one_hot(labels, num_classes, dtype=tf.float32) * weights[:, None]
    one_hot_pred = tf.one_hot(predictions, num_classes, dtype=tf.float32)
    return tf.matmul(one_hot_true, one_hot_pred, transpose_a=True)


def masked_lm_batch_sums(labels, logits, mask_weights):
    """Returns (nll_sum, correct_sum, weight_sum) of a masked-LM batch, weighted by mask_weights.

    Args:
      labels: int tensor [B, P]. Original token ids at the masked positions.
      logits: float tensor [B, P, V]. Predictions at the masked positions.
      mask_weights: float tensor [B, P]. 1 for real predictions, 0 for padding.
    """
    logits = tf.cast(logits, tf.float32)
    weights = tf.cast(mask_weights, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1], dtype=tf.float32)
    nll = -tf.reduce_sum(one_hot * log_probs, axis=-1)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               tf.cast(labels, tf.int32)), tf.float32)
    return tf.reduce_sum(nll * weights), tf.reduce_sum(correct * weights), tf.reduce_sum(weights)


def replaced_token_batch_sums(replaced, logits, token_weights):
    """Returns (loss_sum, correct_sum, replaced_sum, token_sum) of replaced-token detection.

    Args:
      replaced: float tensor [B, L]. 1 where the token was replaced, 0 where it is the original.
      logits: float tensor [B, L]. Discriminator logits (> 0 predicts "replaced").
      token_weights: float tensor [B, L]. 1 for real tokens, 0 for padding.
    """
    replaced = tf.cast(replaced, tf.float32)
    logits = tf.cast(logits, tf.float32)
    weights = tf.cast(token_weights, tf.float32)
    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=replaced, logits=logits)
    correct = tf.cast(tf.equal(tf.cast(logits > 0.0, tf.float32), replaced), tf.float32)
    return (tf.reduce_sum(loss * weights), tf.reduce_sum(correct * weights),
            tf.reduce_sum(replaced * weights), tf.reduce_sum(weights))


DETECTION_LOGIT_BINS = 400  # logit histogram bins over [-DETECTION_LOGIT_LIMIT, DETECTION_LOGIT_LIMIT]
DETECTION_LOGIT_LIMIT = 10.0


def replaced_token_logit_histograms(replaced, logits, token_weights):
    """Returns (replaced_histogram, original_histogram), float32 [DETECTION_LOGIT_BINS] each.

    Counts the real tokens of each kind by discriminator logit, in equal bins over
    [-DETECTION_LOGIT_LIMIT, DETECTION_LOGIT_LIMIT] (logits outside go to the end bins). Histograms
    add up across batches and replicas; `area_under_roc_curve` reads them.

    Args:
      replaced: float tensor [B, L]. 1 where the token was replaced, 0 where it is the original.
      logits: float tensor [B, L]. Discriminator logits.
      token_weights: float tensor [B, L]. 1 for real tokens, 0 for padding.
    """
    replaced = tf.reshape(tf.cast(replaced, tf.float32), [-1])
    weights = tf.reshape(tf.cast(token_weights, tf.float32), [-1])
    scaled = (tf.reshape(tf.cast(logits, tf.float32), [-1]) + DETECTION_LOGIT_LIMIT) / (2 * DETECTION_LOGIT_LIMIT)
    bins = tf.clip_by_value(tf.cast(tf.floor(scaled * DETECTION_LOGIT_BINS), tf.int32), 0, DETECTION_LOGIT_BINS - 1)
    return (tf.math.unsorted_segment_sum(weights * replaced, bins, DETECTION_LOGIT_BINS),
            tf.math.unsorted_segment_sum(weights * (1.0 - replaced), bins, DETECTION_LOGIT_BINS))


def area_under_roc_curve(positive_histogram, negative_histogram):
    """Returns the ROC AUC of scores given as histograms over the same ascending bins (NaN if a class is empty).

    The probability that a positive scores above a negative; a positive and a negative in the same
    bin count one half (ties).

    Args:
      positive_histogram: array [N]. Count of positives per bin.
      negative_histogram: array [N]. Count of negatives per bin.
    """
    positives = np.asarray(positive_histogram, np.float64)
    negatives = np.asarray(negative_histogram, np.float64)
    if positives.sum() <= 0 or negatives.sum() <= 0:
        return float("nan")
    negatives_below = np.cumsum(negatives) - negatives
    wins = np.sum(positives * (negatives_below + 0.5 * negatives))
    return float(wins / (positives.sum() * negatives.sum()))


def metrics_from_confusion_matrix(confusion):
    """Returns accuracy and macro precision/recall/F1 of a confusion matrix (rows = true).

    Macro averages run over the classes that occur as a label or a prediction, and a class
    with no predictions has precision 0 (as sklearn with zero_division=0).

    Args:
      confusion: array [C, C]. Counts or weighted counts.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    total = confusion.sum()
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    precision, recall, f1, _ = _per_class_arrays(confusion)
    if not present.any():
        return {"accuracy": 0.0, "macro_precision": 0.0, "macro_recall": 0.0, "macro_f1": 0.0}
    return {
        "accuracy": float(true_positives.sum() / total),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
    }


def _per_class_arrays(confusion):
    """Returns (precision, recall, f1, support) arrays [C] of a confusion matrix (rows = true)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(actual > 0, true_positives / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * true_positives / (predicted + actual), 0.0)
    return precision, recall, f1, actual


def per_class_metrics(confusion, class_names=None):
    """Returns {class name: {precision, recall, f1, support}} of a confusion matrix.

    A class with no predictions has precision 0 and one with no examples recall 0 (as sklearn
    with zero_division=0); support is the (weighted) number of true examples of the class.

    Args:
      confusion: array [C, C]. Counts or weighted counts, rows = true class.
      class_names: list of str or None. One name per class id. Defaults to "0", "1", ...
    """
    precision, recall, f1, support = _per_class_arrays(confusion)
    names = [str(i) for i in range(len(support))] if class_names is None else list(class_names)
    if len(names) != len(support):
        raise ValueError(f"class_names has {len(names)} names for a {len(support)}-class "
                         "confusion matrix; pass one name per class")
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                   "support": int(round(n)) if float(n).is_integer() else float(n)}
            for name, p, r, f, n in zip(names, precision, recall, f1, support)}


class ClassificationMetrics:
    """Streams confusion matrices and reports loss, accuracy, macro P/R/F1 and the matrix.

    Args:
      num_classes: int. Number of classes.
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.reset()

    def reset(self):
        """Clears all accumulated statistics."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.float64)
        self.loss_sum = 0.0
        self.loss_denominator = 0.0

    def update(self, confusion, loss_sum=0.0, loss_denominator=0.0):
        """Adds one batch (already summed across replicas).

        Args:
          confusion: array [C, C]. Batch confusion matrix.
          loss_sum: float. Sum of per-example losses. Defaults to 0.0.
          loss_denominator: float. Number (or weight) of examples in loss_sum. Defaults to 0.0.
        """
        self.confusion += np.asarray(confusion, np.float64)
        self.loss_sum += float(loss_sum)
        self.loss_denominator += float(loss_denominator)

    def result(self):
        """Returns a dict with loss, accuracy, macro_precision/recall/f1 and confusion_matrix."""
        results = {"loss": self.loss_sum / max(self.loss_denominator, 1e-12)}
        results.update(metrics_from_confusion_matrix(self.confusion))
        results["confusion_matrix"] = self.confusion.round().astype(np.int64)
        return results


class MaskedLMMetrics:
    """Streams masked-LM sums and reports loss, accuracy and perplexity (weighted by mask)."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Clears all accumulated statistics."""
        self.nll_sum = 0.0
        self.correct_sum = 0.0
        self.weight_sum = 0.0

    def update(self, nll_sum, correct_sum, weight_sum):
        """Adds one batch (already summed across replicas).

        Args:
          nll_sum: float. Sum of weighted negative log-likelihoods.
          correct_sum: float. Weighted count of correct predictions.
          weight_sum: float. Sum of mask weights.
        """
        self.nll_sum += float(nll_sum)
        self.correct_sum += float(correct_sum)
        self.weight_sum += float(weight_sum)

    def result(self):
        """Returns a dict with loss, accuracy and perplexity."""
        denominator = max(self.weight_sum, 1e-12)
        loss = self.nll_sum / denominator
        return {"loss": loss, "accuracy": self.correct_sum / denominator,
                "perplexity": math.exp(min(loss, 700.0))}


class SummedMetrics:
    """Streams named sums and reports the values a function computes from their totals.

    Args:
      result_fn: callable. Maps a dict of summed floats (numpy arrays for array-valued sums such as
        histograms) to a dict of metric values.
    """

    def __init__(self, result_fn):
        self.result_fn = result_fn
        self.reset()

    def reset(self):
        """Clears all accumulated sums."""
        self.sums = {}

    def update(self, sums):
        """Adds one batch's sums (already summed across replicas).

        Args:
          sums: dict of str to float or array. The batch's sums by name.
        """
        for name, value in sums.items():
            value = float(value) if np.ndim(value) == 0 else np.asarray(value, np.float64)
            self.sums[name] = self.sums.get(name, 0.0) + value

    def result(self):
        """Returns the metrics computed from the accumulated sums."""
        return self.result_fn(self.sums)
