"""The Electra objective's math on hand-made tensors, and its per-term denominators across replicas."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.training import (Electra, MaskedLM, ObjectiveError, SummedMetrics, area_under_roc_curve, get_objective,
                                get_strategy, replaced_token_logit_histograms)
from tfmodels.training.objectives import global_denominators

RNG = np.random.default_rng(0)
B, L, P, V = 4, 6, 2, 7
LAMBDA = 50.0


def hand_made_batch():
    """Features, labels, mask weights and model outputs of a batch; row 3 has two padded tokens and
    one padding prediction."""
    padding_mask = np.ones((B, L), "int32")
    padding_mask[3, 4:] = 0
    mask_weights = np.ones((B, P), "float32")
    mask_weights[3, 1] = 0.0
    features = {"padding_mask": padding_mask, "token_ids": np.ones((B, L), "int32")}
    labels = RNG.integers(0, V, (B, P)).astype("int32")
    outputs = {"generator_logits": RNG.normal(size=(B, P, V)).astype("float32"),
               "discriminator_logits": RNG.normal(size=(B, L)).astype("float32"),
               "replaced": (RNG.random((B, L)) < 0.3).astype("float32") * padding_mask,
               "discriminator_weights": padding_mask.astype("float32")}
    return features, labels, mask_weights, outputs


def by_hand(labels, mask_weights, outputs):
    """(generator loss, discriminator loss) computed with NumPy from the definitions."""
    logits = outputs["generator_logits"].astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    generator = (nll * mask_weights).sum() / mask_weights.sum()
    z, y, w = (outputs[k].astype("float64") for k in ("discriminator_logits", "replaced", "discriminator_weights"))
    cross_entropy = np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - z * y
    return generator, (cross_entropy * w).sum() / w.sum()


def single_replica_loss(objective, features, labels, mask_weights, outputs):
    context = tf.distribute.get_replica_context()
    denominators = global_denominators(context, objective.loss_denominators(features, labels, mask_weights))
    loss_sums, stats = objective.train_sums(labels, outputs, mask_weights)
    return float(objective.loss(loss_sums, denominators)), {k: float(v) for k, v in stats.items()}


def test_loss_is_generator_plus_weighted_discriminator_term():
    features, labels, mask_weights, outputs = hand_made_batch()
    loss, stats = single_replica_loss(Electra(LAMBDA), features, labels, mask_weights, outputs)
    generator, discriminator = by_hand(labels, mask_weights, outputs)
    assert loss == pytest.approx(generator + LAMBDA * discriminator, rel=1e-5)
    assert stats["discriminator_tokens"] == B * L - 2
    assert stats["generator_weight_sum"] == B * P - 1
    logs = Electra(LAMBDA).train_logs(stats)
    assert logs["generator_loss"] == pytest.approx(generator, rel=1e-5)
    assert logs["discriminator_loss"] == pytest.approx(discriminator, rel=1e-5)
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    real = features["padding_mask"] == 1
    assert logs["replaced_fraction"] == pytest.approx(outputs["replaced"][real].mean())
    predicted = outputs["discriminator_logits"] > 0
    assert logs["discriminator_accuracy"] == pytest.approx(np.mean(predicted[real] == (outputs["replaced"][real] > 0)))


def test_padding_is_excluded_from_the_discriminator_term():
    features, labels, mask_weights, outputs = hand_made_batch()
    loss, _ = single_replica_loss(Electra(LAMBDA), features, labels, mask_weights, outputs)
    changed = dict(outputs, discriminator_logits=outputs["discriminator_logits"].copy(),
                   generator_logits=outputs["generator_logits"].copy())
    changed["discriminator_logits"][3, 4:] = 100.0  # confidently "replaced" on padding
    changed["generator_logits"][3, 1] = -100.0  # the padding prediction
    assert single_replica_loss(Electra(LAMBDA), features, labels, mask_weights, changed)[0] == pytest.approx(loss)


def test_evaluation_metrics_equal_the_training_logs_of_the_same_sums():
    features, labels, mask_weights, outputs = hand_made_batch()
    objective = get_objective(Electra(2.0))
    sums = {k: np.asarray(v) for k, v in objective.eval_sums(labels, outputs, mask_weights).items()}
    metrics = objective.new_metrics(sums)
    assert isinstance(metrics, SummedMetrics)
    objective.accumulate(metrics, sums)
    objective.accumulate(metrics, sums)
    assert metrics.result() == pytest.approx(objective.train_logs(sums))
    assert sorted(metrics.result()) == ["discriminator_accuracy", "discriminator_auc", "discriminator_loss",
                                        "generator_accuracy", "generator_loss", "loss", "replaced_fraction"]


def test_discriminator_auc_ranks_replaced_tokens_against_original_ones():
    """The histogram AUC equals the exact rank AUC within the bins' resolution (pairs in one bin count
    one half), counts only real tokens, and reads 1 for a perfect ranking and 0.5 for none."""
    rng = np.random.default_rng(3)
    replaced = (rng.random((6, 20)) < 0.3).astype("float32")
    logits = (rng.normal(size=(6, 20)) + 1.5 * replaced).astype("float32")
    weights = np.ones((6, 20), "float32")
    weights[:, 15:] = 0.0
    logits[:, 15:] = np.where(replaced[:, 15:] > 0, -9.0, 9.0)  # padding, ranked wrongly: must not count
    histograms = replaced_token_logit_histograms(replaced, logits, weights)
    real = weights > 0
    positives, negatives = logits[real][replaced[real] > 0], logits[real][replaced[real] == 0]
    exact = np.mean(positives[:, None] > negatives[None, :])
    assert area_under_roc_curve(*histograms) == pytest.approx(exact, abs=0.02)
    perfect = replaced_token_logit_histograms(replaced, np.where(replaced > 0, 3.0, -3.0), weights)
    assert area_under_roc_curve(*perfect) == 1.0
    constant = replaced_token_logit_histograms(replaced, np.zeros_like(logits), weights)
    assert area_under_roc_curve(*constant) == 0.5
    assert np.isnan(area_under_roc_curve([1.0, 2.0], [0.0, 0.0]))


def test_each_term_is_divided_by_its_own_count_across_replicas():
    """Two replicas with different numbers of real tokens and mask weights: the replicas' losses add up
    to the loss of the whole batch on one device."""
    features, labels, mask_weights, outputs = hand_made_batch()
    objective = Electra(LAMBDA)
    whole, _ = single_replica_loss(objective, features, labels, mask_weights, outputs)
    strategy = get_strategy("mirrored")

    def halves(array):
        return lambda context: array[:3] if context.replica_id_in_sync_group == 0 else array[3:]

    def replica_loss(features, labels, mask_weights, outputs):
        context = tf.distribute.get_replica_context()
        denominators = global_denominators(context, objective.loss_denominators(features, labels, mask_weights))
        return objective.loss(objective.train_sums(labels, outputs, mask_weights)[0], denominators)

    parts = tf.nest.map_structure(lambda a: strategy.experimental_distribute_values_from_function(halves(a)),
                                  (features, labels, mask_weights, outputs))
    per_replica = tf.function(lambda: strategy.run(replica_loss, args=parts))()
    total = sum(float(v) for v in strategy.experimental_local_results(per_replica))
    assert total == pytest.approx(whole, rel=1e-5)


def test_single_term_objectives_divide_by_their_one_denominator():
    labels = np.array([[1, 2]], "int32")
    logits = RNG.normal(size=(1, 2, 5)).astype("float32")
    weights = np.array([[1.0, 0.0]], "float32")
    objective = MaskedLM()
    loss_sums, stats = objective.train_sums(labels, logits, weights)
    denominators = {"loss": tf.constant(4.0)}
    assert float(objective.loss(loss_sums, denominators)) == float(stats["loss_sum"] / 4.0)


def test_invalid_discriminator_weight_is_rejected():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ObjectiveError, match="discriminator_weight"):
            Electra(bad)
