"""Training objectives: what a model's logits are scored against, as small classes.

The Trainer's loop never asks which objective it runs: it calls the objective for the loss terms and
their denominators, the sums that evaluation reduces across replicas, the metrics built from them and
the names of the training logs. To add an objective, subclass `Objective`, implement its methods and
register it in `OBJECTIVES` (tfmodels.choices lists the names config and flags accept).

The loss rule (one home: `global_denominators` and `Objective.loss`): a loss is one or more named
terms; each term's summed loss is divided by its own count summed across micro-batches and replicas
(examples, mask weights, real tokens), and the terms are added with the objective's `loss_weights`.

Batch formats are in ARCHITECTURE.md: classification labels are class ids [B]; masked-LM labels are
the original ids [B, P] at `mask_positions`, with `mask_weights` [B, P] as sample weights. A model
may return a dict of outputs (ELECTRA: logits of two networks and the targets it made).
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


def global_denominators(replica_context, local_counts):
    """Each loss term's count summed across replicas, floored at 1e-12 (an empty batch divides safely).

    Args:
      replica_context: tf.distribute.ReplicaContext. The current replica's context.
      local_counts: dict of str to float32 scalar. This replica's counts by loss term, already summed
        over its micro-batches.
    """
    totals = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local_counts)
    return {name: tf.maximum(count, 1e-12) for name, count in totals.items()}


class Objective:
    """The loss and metrics of one kind of training target.

    Every method that takes tensors runs in replica context on the replica's share of a batch and
    returns sums, so the Trainer can add them across micro-batches and replicas. A single-term
    objective implements `loss_denominator` and `loss_parts`; one with several loss terms overrides
    `loss_denominators`, `train_sums`, `loss_weights` and `stat_names` (see `Electra`).
    """

    name = "objective"
    # The statistics a training step returns from `train_sums`, summed over steps for the logs.
    stat_names = ("loss_sum", "denominator", "correct", "count")
    # Weight of each loss term in the step's loss; a term not listed has weight 1.
    loss_weights = {}

    def loss_denominator(self, features, labels, sample_weight):
        """The local count that the summed loss is divided by (after an all-reduce)."""
        raise NotImplementedError

    def loss_parts(self, labels, logits, sample_weight):
        """Returns (loss_sum, denominator, correct, count) of a local batch (float32 logits)."""
        raise NotImplementedError

    def loss_denominators(self, features, labels, sample_weight):
        """The local counts by loss term that each term's summed loss is divided by (after an all-reduce).

        Args:
          features: dict of tensors. The local batch's features.
          labels: tensor or None. The local batch's labels.
          sample_weight: tensor or None. The local batch's sample weights.
        """
        return {"loss": self.loss_denominator(features, labels, sample_weight)}

    def train_sums(self, labels, outputs, sample_weight):
        """Returns (loss sums by term, statistics by `stat_names`) of a local training batch.

        Args:
          labels: tensor or None. The local batch's labels.
          outputs: float32 tensor or dict. The model's outputs.
          sample_weight: tensor or None. The local batch's sample weights.
        """
        loss_sum, denominator, correct, count = self.loss_parts(labels, outputs, sample_weight)
        return {"loss": loss_sum}, {"loss_sum": loss_sum, "denominator": denominator, "correct": correct,
                                    "count": count}

    def loss(self, loss_sums, denominators):
        """The replica's share of the step's loss: each term's sum over its global count, weighted.

        Args:
          loss_sums: dict of str to float32 scalar. Local loss sums by term (from `train_sums`).
          denominators: dict of str to float32 scalar. Global counts by term (`global_denominators`).
        """
        total = None
        for term, loss_sum in loss_sums.items():
            value = loss_sum / denominators[term]
            weight = self.loss_weights.get(term, 1.0)
            if weight != 1.0:
                value = value * weight
            total = value if total is None else total + value
        return total

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


class Electra(Objective):
    """Replaced-token detection (ELECTRA): generator masked-LM loss + weight x discriminator loss.

    The model (`tfmodels.models.ElectraPretrainer`) returns a dict: `generator_logits` [B, P, V] at
    the masked positions, `discriminator_logits` [B, L], `replaced` [B, L] (1 where the
    discriminator's input token differs from the original) and `discriminator_weights` [B, L]
    (1 for real tokens, 0 for padding). The generator term (cross-entropy against the original ids,
    weighted by mask weights) is divided by the global sum of mask weights; the discriminator term
    (sigmoid cross-entropy on every real token) by the global number of real tokens.

    Evaluation also reports `discriminator_auc`, the area under the ROC curve of the discriminator's
    logits (replaced against original tokens, from logit histograms). Thresholded accuracy can sit
    at the all-"original" baseline while the discriminator already ranks replaced tokens higher; the
    AUC shows how well it ranks them (0.5: not at all).

    Args:
      discriminator_weight: float. Weight of the discriminator term (lambda, > 0). Defaults to 50.0
        (Clark et al. 2020).
    """

    name = "electra"
    stat_names = ("generator_nll_sum", "generator_correct", "generator_weight_sum",
                  "discriminator_loss_sum", "discriminator_correct", "replaced", "discriminator_tokens")

    def __init__(self, discriminator_weight=50.0):
        if not discriminator_weight > 0 or not math.isfinite(discriminator_weight):
            raise ObjectiveError(f"discriminator_weight must be a finite number > 0; got {discriminator_weight!r}")
        self.discriminator_weight = float(discriminator_weight)
        self.loss_weights = {"discriminator": self.discriminator_weight}

    def loss_denominators(self, features, labels, sample_weight):
        mask_weights = (tf.cast(tf.size(labels), tf.float32) if sample_weight is None
                        else tf.reduce_sum(tf.cast(sample_weight, tf.float32)))
        return {"generator": mask_weights, "discriminator": token_count(features)}

    def train_sums(self, labels, outputs, sample_weight):
        sums = self._scalar_sums(labels, outputs, sample_weight)
        return {"generator": sums["generator_nll_sum"], "discriminator": sums["discriminator_loss_sum"]}, sums

    def eval_sums(self, labels, outputs, sample_weight):
        replaced_histogram, original_histogram = metrics_lib.replaced_token_logit_histograms(
            outputs["replaced"], outputs["discriminator_logits"], outputs["discriminator_weights"])
        return dict(self._scalar_sums(labels, outputs, sample_weight), replaced_histogram=replaced_histogram,
                    original_histogram=original_histogram)

    def _scalar_sums(self, labels, outputs, sample_weight):
        """The sums of `stat_names`: generator and discriminator losses, hits and counts."""
        weights = (tf.ones(tf.shape(labels), tf.float32) if sample_weight is None
                   else tf.cast(sample_weight, tf.float32))
        nll_sum, correct, weight_sum = metrics_lib.masked_lm_batch_sums(labels, outputs["generator_logits"], weights)
        detection = metrics_lib.replaced_token_batch_sums(
            outputs["replaced"], outputs["discriminator_logits"], outputs["discriminator_weights"])
        return {"generator_nll_sum": nll_sum, "generator_correct": correct, "generator_weight_sum": weight_sum,
                "discriminator_loss_sum": detection[0], "discriminator_correct": detection[1],
                "replaced": detection[2], "discriminator_tokens": detection[3]}

    def new_metrics(self, first_sums):
        return metrics_lib.SummedMetrics(self.train_logs)

    def accumulate(self, metrics, sums):
        metrics.update(sums)

    def train_logs(self, sums):
        """Total loss, generator loss and accuracy, discriminator loss and accuracy, replaced fraction,
        and (from evaluation sums, which carry the logit histograms) discriminator_auc."""
        masks = max(sums["generator_weight_sum"], 1e-12)
        tokens = max(sums["discriminator_tokens"], 1e-12)
        generator_loss = sums["generator_nll_sum"] / masks
        discriminator_loss = sums["discriminator_loss_sum"] / tokens
        return {"loss": generator_loss + self.discriminator_weight * discriminator_loss,
                "generator_loss": generator_loss,
                "generator_accuracy": sums["generator_correct"] / masks,
                "discriminator_loss": discriminator_loss,
                "discriminator_accuracy": sums["discriminator_correct"] / tokens,
                "replaced_fraction": sums["replaced"] / tokens,
                **self._auc(sums)}

    @staticmethod
    def _auc(sums):
        if "replaced_histogram" not in sums:
            return {}
        return {"discriminator_auc": metrics_lib.area_under_roc_curve(sums["replaced_histogram"],
                                                                     sums["original_histogram"])}


OBJECTIVES = {"classification": Classification, "mlm": MaskedLM, "electra": Electra}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES


def get_objective(objective, label_smoothing=0.0):
    """Returns an Objective from a name in OBJECTIVES, or the Objective instance given.

    Args:
      objective: str or Objective. "classification", "mlm" or "electra" (with its default
        discriminator weight), or an instance.
      label_smoothing: float. For classification. Defaults to 0.0.
    """
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ObjectiveError(f"objective {objective!r} unknown; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective].from_options(label_smoothing=label_smoothing)
