"""Training objectives: what a model's logits are scored against, as small classes.

The Trainer's loop never asks which objective it runs: it calls the objective for the loss and its
denominator, the sums that evaluation reduces across replicas, the metrics built from them and the
names of the training logs. To add an objective, subclass `Objective`, implement its methods and
register it in `OBJECTIVES` (tfmodels.choices lists the names config and flags accept).

Batch formats are in ARCHITECTURE.md: classification labels are class ids [B]; masked-LM labels are
the original ids [B, P] at `mask_positions`, with `mask_weights` [B, P] as sample weights.
"""
import math

import tensorflow as tf

from tfmodels.choices import OBJECTIVES as OBJECTIVE_NAMES
from tfmodels.training import metrics as metrics_lib


class ObjectiveError(ValueError):
    """An objective name or argument is invalid."""


def token_count(features):
    """Returns the number of real tokens (padding_mask ones), or 0 without a padding_mask."""
    if isinstance(features, dict) and "padding_mask" in features:
        return tf.reduce_sum(tf.cast(features["padding_mask"], tf.float32))
    return tf.constant(0.0)


def batch_size(features):
    """Returns the batch size (float32) of a features structure."""
    return tf.cast(tf.shape(tf.nest.flatten(features)[0])[0], tf.float32)


def classification_loss_sum(labels, logits, sample_weight=None, label_smoothing=0.0):
    """Returns the sum over the batch of (label-smoothed) cross-entropy on float32 logits.

    Args:
      labels: int tensor [B]. Class ids.
      logits: float tensor [B, C].
      sample_weight: float tensor [B] or None. Defaults to None.
      label_smoothing: float. Mass spread uniformly over all classes. Defaults to 0.0.
    """
    logits = tf.cast(logits, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), [-1]), tf.shape(logits)[-1],
                         dtype=tf.float32)
    per_example = -tf.reduce_sum(one_hot * log_probs, axis=-1)
    if label_smoothing:
        uniform = -tf.reduce_mean(log_probs, axis=-1)
        per_example = (1.0 - label_smoothing) * per_example + label_smoothing * uniform
    if sample_weight is not None:
        per_example = per_example * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.reduce_sum(per_example)


class Objective:
    """The loss and metrics of one kind of training target.

    Every method that takes tensors runs in replica context on the replica's share of a batch and
    returns sums, so the Trainer can add them across micro-batches and replicas.
    """

    name = "objective"

    def loss_denominator(self, features, labels, sample_weight):
        """The local count that the summed loss is divided by (after an all-reduce)."""
        raise NotImplementedError

    def loss_parts(self, labels, logits, sample_weight):
        """Returns (loss_sum, denominator, correct, count) of a local batch (float32 logits)."""
        raise NotImplementedError

    def eval_sums(self, labels, logits, sample_weight):
        """The sums evaluation reduces across replicas, by name."""
        raise NotImplementedError

    def new_metrics(self, first_sums):
        """An evaluation accumulator (see tfmodels.training.metrics) sized by the first sums."""
        raise NotImplementedError

    def accumulate(self, metrics, sums):
        """Adds one batch's reduced `eval_sums` (NumPy values) to `metrics`."""
        raise NotImplementedError

    @classmethod
    def from_options(cls, label_smoothing=0.0):
        """Builds the objective from the Trainer's options (those it does not use are ignored)."""
        del label_smoothing
        return cls()

    def train_logs(self, sums):
        """Training log values from summed statistics (loss_sum, denominator, correct, count)."""
        loss = sums["loss_sum"] / max(sums["denominator"], 1e-12)
        return {"loss": loss, "accuracy": sums["correct"] / max(sums["count"], 1e-12)}


class Classification(Objective):
    """Softmax cross-entropy over class ids, divided by the global number of examples.

    Args:
      label_smoothing: float. Mass spread uniformly over all classes, in [0, 1). Defaults to 0.0.
    """

    name = "classification"

    def __init__(self, label_smoothing=0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ObjectiveError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    @classmethod
    def from_options(cls, label_smoothing=0.0):
        return cls(label_smoothing)

    def loss_denominator(self, features, labels, sample_weight):
        return batch_size(features)

    def loss_parts(self, labels, logits, sample_weight):
        loss_sum = classification_loss_sum(labels, logits, sample_weight, self.label_smoothing)
        count = tf.cast(tf.shape(logits)[0], tf.float32)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(predictions, tf.reshape(tf.cast(labels, tf.int32), [-1])), tf.float32))
        return loss_sum, count, correct, count

    def eval_sums(self, labels, logits, sample_weight):
        loss_sum, denominator, _, _ = self.loss_parts(labels, logits, sample_weight)
        confusion = metrics_lib.confusion_matrix_batch(labels, logits, logits.shape[-1], sample_weight)
        return {"loss_sum": loss_sum, "denominator": denominator, "confusion": confusion}

    def new_metrics(self, first_sums):
        return metrics_lib.ClassificationMetrics(first_sums["confusion"].shape[0])

    def accumulate(self, metrics, sums):
        metrics.update(sums["confusion"], sums["loss_sum"], sums["denominator"])


class MaskedLM(Objective):
    """Cross-entropy at the masked positions, divided by the global sum of mask weights."""

    name = "mlm"

    def loss_denominator(self, features, labels, sample_weight):
        if sample_weight is None:
            return tf.cast(tf.size(labels), tf.float32)
        return tf.reduce_sum(tf.cast(sample_weight, tf.float32))

    def loss_parts(self, labels, logits, sample_weight):
        weights = (tf.ones(tf.shape(labels), tf.float32) if sample_weight is None
                   else tf.cast(sample_weight, tf.float32))
        nll_sum, correct, weight_sum = metrics_lib.masked_lm_batch_sums(labels, logits, weights)
        return nll_sum, weight_sum, correct, weight_sum

    def eval_sums(self, labels, logits, sample_weight):
        nll_sum, weight_sum, correct, _ = self.loss_parts(labels, logits, sample_weight)
        return {"nll_sum": nll_sum, "correct": correct, "weight_sum": weight_sum}

    def new_metrics(self, first_sums):
        return metrics_lib.MaskedLMMetrics()

    def accumulate(self, metrics, sums):
        metrics.update(sums["nll_sum"], sums["correct"], sums["weight_sum"])

    def train_logs(self, sums):
        logs = super().train_logs(sums)
        logs["perplexity"] = math.exp(min(logs["loss"], 700.0))
        return logs


OBJECTIVES = {"classification": Classification, "mlm": MaskedLM}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES


def get_objective(objective, label_smoothing=0.0):
    """Returns an Objective from a name in OBJECTIVES, or the Objective instance given.

    Args:
      objective: str or Objective. "classification" or "mlm", or an instance.
      label_smoothing: float. For classification. Defaults to 0.0.
    """
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ObjectiveError(f"objective {objective!r} unknown; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective].from_options(label_smoothing=label_smoothing)
