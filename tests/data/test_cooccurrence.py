"""Tests for the PPMI-SVD co-occurrence token vectors."""

import numpy as np

from tfmodels.data.cooccurrence import cooccurrence_counts, cooccurrence_vectors, ppmi


def test_counts_are_symmetric_and_windowed():
    counts = cooccurrence_counts([[1, 2, 3]], vocabulary_size=5, window=1).toarray()
    np.testing.assert_array_equal(counts, counts.T)
    assert counts[1, 2] == 1 and counts[2, 3] == 1 and counts[1, 3] == 0
    wider = cooccurrence_counts([[1, 2, 3]], vocabulary_size=5, window=2).toarray()
    assert wider[1, 3] == 1


def test_ppmi_is_non_negative():
    counts = cooccurrence_counts([[1, 2, 3, 1, 2, 4]] * 3, vocabulary_size=6, window=2)
    assert ppmi(counts).toarray().min() >= 0.0


def test_tokens_in_the_same_contexts_get_similar_vectors():
    rng = np.random.default_rng(0)
    # Tokens 5 and 6 always appear between 1 and 2; 7 and 8 between 3 and 4.
    sequences = []
    for _ in range(400):
        a, b = rng.choice([5, 6], 2)
        c, d = rng.choice([7, 8], 2)
        sequences.append([1, a, 2, 9, 3, c, 4, 9, 1, b, 2, 9, 3, d, 4])
    vectors, has_vector = cooccurrence_vectors(sequences, vocabulary_size=10, dim=4, window=1)
    assert vectors.shape == (10, 4) and vectors.dtype == np.float32
    assert not has_vector[0] and has_vector[5]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-9)
    assert unit[5] @ unit[6] > unit[5] @ unit[7]
    assert abs(vectors[has_vector].std() - 0.02) < 1e-3


def test_vocabulary_smaller_than_dim_pads_with_zeros():
    vectors, has_vector = cooccurrence_vectors([[1, 2, 3, 1, 2]], vocabulary_size=4, dim=8, window=1)
    assert vectors.shape == (4, 8) and not vectors[:, 3:].any()
