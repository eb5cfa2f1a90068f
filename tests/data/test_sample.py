"""The stratified sample of labelled training examples (`data.train_examples`)."""

import numpy as np
import pytest

from tfmodels import data as tfm_data


def labels_of(counts):
    """Interleaved label ids with `counts[label]` of each, as a split's file order might hold them."""
    labels = np.concatenate([np.full(n, label) for label, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(labels)


def test_the_sample_has_the_size_and_each_labels_share_within_one_example():
    labels = labels_of([700, 300])
    for size in (1, 2, 10, 333, 999, 1000):
        sample = tfm_data.stratified_sample(labels, size, seed=5)
        assert len(sample) == len(set(sample.tolist())) == size
        assert np.all(np.diff(sample) > 0), "indices come sorted"
        counts = np.bincount(labels[sample], minlength=2)
        assert np.all(np.abs(counts - size * np.array([0.7, 0.3])) <= 1), (size, counts)


def test_a_smaller_sample_of_a_seed_is_part_of_every_larger_one_and_seeds_differ():
    labels = labels_of([520, 480, 40])
    samples = [set(tfm_data.stratified_sample(labels, size, seed=42).tolist()) for size in (50, 200, 800)]
    assert samples[0] < samples[1] < samples[2]
    other = set(tfm_data.stratified_sample(labels, 200, seed=43).tolist())
    assert other != samples[1]
    assert set(tfm_data.stratified_sample(labels, 200, seed=42).tolist()) == samples[1], "deterministic"


@pytest.mark.parametrize("size", [0, 1001, 2.5, True, None])
def test_a_size_outside_the_examples_is_refused(size):
    with pytest.raises(ValueError, match=r"expected an integer from 1 to 1000, the examples"):
        tfm_data.stratified_sample(labels_of([500, 500]), size)
