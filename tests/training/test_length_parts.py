"""A batch run as length-sorted parts: the same rows once each, trimmed padding, the whole batch's gradient."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset
from tfmodels import models
from tfmodels.training import Trainer, TrainerConfigError, build_optimizer, get_strategy
from tfmodels.training.length_parts import real_extent, split_by_length

VOCABULARY_SIZE = 40
WIDTH = 16


def _token_batches(num_examples=40, batch_size=20, seed=0, left_padded_rows=()):
    """Token features of random lengths 2..WIDTH padded to WIDTH, with labels and two masked positions."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, WIDTH + 1, size=num_examples)
    padding_mask = (np.arange(WIDTH)[None, :] < lengths[:, None]).astype("int32")
    for row in left_padded_rows:
        padding_mask[row] = padding_mask[row][::-1]
    token_ids = rng.integers(5, VOCABULARY_SIZE, size=(num_examples, WIDTH)).astype("int32") * padding_mask
    positions = np.stack([rng.integers(0, n, size=2) for n in lengths]).astype("int32")
    features = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": np.zeros_like(token_ids),
                "mask_positions": positions}
    labels = (lengths > WIDTH // 2).astype("int32")
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size), lengths


def test_parts_hold_every_row_once_sorted_by_length_and_trimmed_to_their_longest():
    data, _ = _token_batches(num_examples=11, batch_size=11, left_padded_rows=(3,))
    features, labels = next(iter(data))
    weights = tf.range(11, dtype=tf.float32)
    extents = real_extent(features["padding_mask"]).numpy()
    assert extents[3] == WIDTH, "a left-padded row keeps its whole width"
    parts = split_by_length(features, labels, weights, 3)
    assert [len(part[1]) for part in parts] == [3, 4, 4]
    seen = np.concatenate([part[2].numpy() for part in parts]).astype(int)
    assert sorted(seen) == list(range(11))
    assert list(extents[seen]) == sorted(extents), "rows go from the shortest to the longest"
    for part_features, part_labels, part_weights in parts:
        rows = part_weights.numpy().astype(int)
        width = int(extents[rows].max())
        for name in ("token_ids", "padding_mask", "segment_ids"):
            np.testing.assert_array_equal(part_features[name], features[name].numpy()[rows, :width])
        np.testing.assert_array_equal(part_features["mask_positions"], features["mask_positions"].numpy()[rows])
        np.testing.assert_array_equal(part_labels, labels.numpy()[rows])
    empty = split_by_length(features, None, None, 12)[0]
    assert empty[0]["token_ids"].shape == (0, 1) and empty[1] is None


def _encoder():
    return models.build_bert_encoder("tiny", vocabulary_size=VOCABULARY_SIZE, max_sequence_length=WIDTH,
                                     dropout=0.0, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32)


def _twin_runs(build, objective, batches, steps, strategy=None):
    """The initial weights, then the weights after `steps` steps of the same model and data under the
    same strategy, in one part and in 3 length-sorted parts (each replica splits its share)."""
    weights = []
    run_strategy = strategy or tf.distribute.get_strategy()
    for parts in (1, 3):
        keras.utils.set_random_seed(3)
        with run_strategy.scope():
            model = build()
            optimizer = build_optimizer("adamw", 3e-3, decay="constant", clipnorm=1.0)
        initial = [w.numpy() for w in model.weights]
        Trainer(model, optimizer, objective=objective, strategy=run_strategy, length_sorted_parts=parts,
                verbose=0).fit(batches, steps=steps)
        weights.append([w.numpy() for w in model.weights])
    return initial, *weights


@pytest.mark.parametrize("pooling", ["mean", pytest.param("cls", marks=pytest.mark.slow)])
def test_a_classifier_trained_in_length_sorted_parts_gets_the_whole_batch_gradient(pooling):
    data, _ = _token_batches()
    data = data.map(lambda features, labels: ({k: v for k, v in features.items() if k != "mask_positions"}, labels))
    initial, whole, parts = _twin_runs(
        lambda: models.build_bert_classifier(_encoder(), 2, dropout=0.0, pooling=pooling),
        "classification", data.repeat(), steps=4)
    assert not all(np.allclose(a, b) for a, b in zip(initial, whole)), "training moved the weights"
    for got, want in zip(parts, whole):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_a_masked_lm_trained_in_length_sorted_parts_gets_the_whole_batch_gradient():
    data, _ = _token_batches()
    mlm = data.map(lambda features, labels: (
        features, tf.gather(features["token_ids"], features["mask_positions"], batch_dims=1),
        tf.ones_like(features["mask_positions"], tf.float32)))
    _, whole, parts = _twin_runs(lambda: models.build_bert_pretrainer(_encoder()), "mlm", mlm.repeat(), steps=4)
    for got, want in zip(parts, whole):
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.slow  # the fast suite's pipeline cell of the strategy matrix runs the demo's parts on one device
def test_each_replica_splits_its_share_of_the_batch_and_the_step_is_the_whole_batchs():
    data, _ = _token_batches()
    data = data.map(lambda features, labels: ({k: v for k, v in features.items() if k != "mask_positions"}, labels))
    _, whole, parts = _twin_runs(lambda: models.build_bert_classifier(_encoder(), 2, dropout=0.0, pooling="mean"),
                                 "classification", data.repeat(), steps=3,
                                 strategy=get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]))
    for got, want in zip(parts, whole):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_length_sorted_parts_need_a_padding_mask_and_a_count_of_at_least_one():
    x, y = make_classification_arrays(num_examples=32)
    trainer = Trainer(build_mlp(), length_sorted_parts=2, verbose=0)
    with pytest.raises(TrainerConfigError, match=r"length_sorted_parts needs features with a 'padding_mask' "
                                                 r"\(token inputs such as BERT's\); got \['features'\]"):
        trainer.fit(make_dataset(x, y, 16), steps=1)
    with pytest.raises(TrainerConfigError, match="length_sorted_parts must be an int >= 1; got 0"):
        Trainer(build_mlp(), length_sorted_parts=0)
