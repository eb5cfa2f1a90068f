"""Count-based token vectors (PPMI + truncated SVD) from a tokenized corpus.

Used to initialize a BERT token embedding before masked-LM pretraining: on a small CPU budget
the masked-LM objective spends thousands of steps on its frequency plateau, while co-occurrence
statistics give similar tokens similar vectors in seconds.
"""

import numpy as np


def cooccurrence_counts(sequences, vocabulary_size, window=2):
    """Symmetric counts of token pairs at most `window` positions apart within a sequence.

    Args:
        sequences: iterable of int arrays. Token ids per line.
        vocabulary_size: int. Number of ids.
        window: int. Largest distance counted. Defaults to 2.

    Returns:
        scipy.sparse.csr_matrix float64 [V, V].
    """
    from scipy import sparse
    rows, cols = [], []
    for ids in sequences:
        ids = np.asarray(ids, dtype=np.int64)
        for distance in range(1, window + 1):
            if len(ids) > distance:
                rows.append(ids[:-distance])
                cols.append(ids[distance:])
    if not rows:
        return sparse.csr_matrix((vocabulary_size, vocabulary_size))
    left, right = np.concatenate(rows), np.concatenate(cols)
    values = np.ones(len(left), dtype=np.float64)
    counts = sparse.coo_matrix((values, (left, right)), shape=(vocabulary_size, vocabulary_size)).tocsr()
    return counts + counts.T


def ppmi(counts, context_smoothing=0.75):
    """Positive pointwise mutual information of a co-occurrence matrix (context distribution smoothed)."""
    counts = counts.tocoo()
    total = counts.sum()
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** context_smoothing
    context /= context.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(counts.data * 1.0 / total) - np.log(row_sums[counts.row] / total) - np.log(
            context[counts.col])
    keep = pmi > 0
    from scipy import sparse
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def cooccurrence_vectors(sequences, vocabulary_size, dim, window=2, target_std=0.02, seed=0):
    """Token vectors [V, dim] from PPMI + truncated SVD, scaled to `target_std`.

    Tokens that never co-occur (e.g. reserved tokens) get None in the returned mask so callers
    keep their own initialization for them.

    Args:
        sequences: iterable of int arrays. Token ids per line.
        vocabulary_size: int. Number of ids.
        dim: int. Vector size (the encoder's hidden size).
        window: int. Co-occurrence distance. Defaults to 2.
        target_std: float. Standard deviation of the returned vectors. Defaults to 0.02 (BERT init).
        seed: int. Randomized SVD seed. Defaults to 0.

    Returns:
        (vectors float32 [V, dim], has_vector bool [V]).
    """
    from sklearn.utils.extmath import randomized_svd
    matrix = ppmi(cooccurrence_counts(sequences, vocabulary_size, window))
    components = min(dim, vocabulary_size - 1)  # a tiny vocabulary has fewer directions than dim
    u, s, _ = randomized_svd(matrix, n_components=components, random_state=seed)
    vectors = np.zeros((vocabulary_size, dim))
    vectors[:, :components] = u * np.sqrt(s)
    has_vector = np.asarray(matrix.getnnz(axis=1) > 0)
    scale = vectors[has_vector].std() if has_vector.any() else 1.0
    vectors = (vectors / max(scale, 1e-12) * target_std).astype(np.float32)
    return vectors, has_vector
