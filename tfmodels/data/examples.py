"""Containers for examples and splits, and the deterministic stratified split."""
import dataclasses
import json
import os

import numpy as np

from tfmodels.data.errors import DataError

SPLIT_NAMES = ("train", "validation", "test")


@dataclasses.dataclass
class TextExamples:
    """Text classification examples of one split.

    Args:
        texts: list[str]. First (or only) text of each example.
        labels: np.ndarray int32 [N]. Label ids into the label vocabulary.
        text_pairs: list[str] | None. Second text of each example for sentence pairs.
    """
    texts: list
    labels: np.ndarray
    text_pairs: list = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape([-1])
        if len(self.texts) != len(self.labels):
            raise ValueError(f"texts has {len(self.texts)} entries but labels has "
                             f"{len(self.labels)}; they must match")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError(f"text_pairs has {len(self.text_pairs)} entries but texts has "
                             f"{len(self.texts)}; they must match")

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        """Returns the examples at `indices` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        return TextExamples(
            texts=[self.texts[i] for i in indices],
            labels=self.labels[indices],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in indices])

    def shortest_first(self):
        """Indices of the examples from the shortest text (pair included) to the longest, ties in order."""
        pairs = self.text_pairs if self.text_pairs is not None else [""] * len(self)
        lengths = [len(text) + len(pair) for text, pair in zip(self.texts, pairs)]
        return np.argsort(lengths, kind="stable")

    def label_counts(self, num_labels):
        """Returns a list with the number of examples per label id."""
        return np.bincount(self.labels, minlength=num_labels).tolist()


class _SplitsMixin:
    """What train/validation/test containers share: label count and the present splits."""

    @property
    def num_labels(self):
        """Number of labels in the label vocabulary."""
        return len(self.label_names)

    def splits(self):
        """Returns {split name: examples} for the splits that are present."""
        return {name: getattr(self, name) for name in SPLIT_NAMES
                if getattr(self, name) is not None}


@dataclasses.dataclass
class TextSplits(_SplitsMixin):
    """Train/validation/test text classification examples with their label names.

    Args:
        train: TextExamples.
        validation: TextExamples | None.
        test: TextExamples | None.
        label_names: list[str]. Label id -> label string.
        stats: dict. Counts describing how the splits were made (for reports).
        report: BadRecordReport | None. Records skipped while reading, per reason.
    """
    train: TextExamples
    validation: TextExamples = None
    test: TextExamples = None
    label_names: list = dataclasses.field(default_factory=list)
    stats: dict = dataclasses.field(default_factory=dict)
    report: object = None

    def counts(self):
        """Returns {split: {"total": n, label name: n, ...}}."""
        result = {}
        for name, examples in self.splits().items():
            per_label = examples.label_counts(self.num_labels)
            result[name] = {"total": len(examples),
                            **dict(zip(self.label_names, per_label))}
        return result


@dataclasses.dataclass
class FeatureExamples:
    """Numeric feature examples of one split.

    Args:
        features: np.ndarray float32 [N, ...].
        labels: np.ndarray int32 [N].
    """
    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape([-1])
        if len(self.features) != len(self.labels):
            raise ValueError(f"features has {len(self.features)} rows but labels has "
                             f"{len(self.labels)}; they must match")

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass
class FeatureSplits(_SplitsMixin):
    """Train/validation/test numeric feature examples.

    Args:
        train: FeatureExamples.
        validation: FeatureExamples | None.
        test: FeatureExamples | None.
        label_names: list[str]. Label id -> label string.
        stats: dict. Counts per split.
        report: BadRecordReport | None. Records skipped while reading, per reason.
    """
    train: FeatureExamples
    validation: FeatureExamples = None
    test: FeatureExamples = None
    label_names: list = dataclasses.field(default_factory=list)
    stats: dict = dataclasses.field(default_factory=dict)
    report: object = None


def _label_permutations(labels, seed):
    """Each label's example indices (labels in increasing order), permuted with
    `np.random.default_rng(seed + label)`: the seeded order both stratified selections cut."""
    labels = np.asarray(labels).reshape([-1])
    return [np.random.default_rng(seed + int(label)).permutation(np.flatnonzero(labels == label))
            for label in np.unique(labels)]


def stratified_split(labels, fractions=(0.8, 0.1, 0.1), seed=42):
    """Splits example indices per label into parts with the given fractions.

    Deterministic for a given `labels` order and `seed`: each label's indices are
    permuted with `np.random.default_rng(seed + label)` and cut at the rounded
    cumulative fractions. Callers sort examples first when file order must not matter.

    Args:
        labels: array-like int [N]. Label id of each example.
        fractions: tuple[float]. Fraction per part; must sum to 1. Defaults to 80/10/10.
        seed: int. Seed of the permutation. Defaults to 42.

    Returns:
        A list with one sorted int64 index array per part.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions={tuple(fractions)} must be >= 0 and sum to 1")
    parts = [[] for _ in fractions]
    for indices in _label_permutations(labels, seed):
        cuts = np.round(np.cumsum(fractions)[:-1] * len(indices)).astype(int)
        for part, chunk in zip(parts, np.split(indices, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(part)).astype(np.int64) for part in parts]


def stratified_sample(labels, size, seed=42):
    """Indices of a stratified sample of `size` examples; a smaller sample is part of every larger one.

    Each label's indices are permuted with `np.random.default_rng(seed + label)`, as in
    `stratified_split`; the examples are then ordered by their place in their own label's permutation
    relative to that label's count, so every prefix of the order holds each label in proportion
    (within one example), and the sample is the first `size` of it.

    Args:
        labels: array-like int [N]. Label id of each example.
        size: int. Examples to keep, 1 to N.
        seed: int. Seed of the permutations. Defaults to 42.

    Returns:
        A sorted int64 index array of `size` entries.

    Example:
        >>> stratified_sample([0, 0, 0, 0, 1, 1, 1, 1], 4, seed=1).size
        4
    """
    count = np.asarray(labels).size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= count:
        raise ValueError(f"size={size!r} is invalid; expected an integer from 1 to {count}, the examples")
    indices = _label_permutations(labels, seed)
    keys = [(np.arange(len(members)) + 0.5) / len(members) for members in indices]
    order = np.argsort(np.concatenate(keys), kind="stable")  # ties: the smaller label id first
    return np.sort(np.concatenate(indices)[order[:size]]).astype(np.int64)


def sorted_label_names(labels):
    """Sorted distinct label strings; numerically when all are integers ("2" < "10")."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def require_examples(examples, source):
    """Raises a DataError naming `source` when a split holds no example."""
    if len(examples) == 0:
        raise DataError(source, None, "dataset is empty (no valid records)",
                        "at least one valid record")


def save_label_names(label_names, path):
    """Saves the label vocabulary as JSON (`labels.json`).

    Args:
        label_names: list[str]. Label id -> label string.
        path: str. File path, or a directory to write `labels.json` into.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "labels.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"label_names": list(label_names)}, f, ensure_ascii=False, indent=1)
    return path


def load_label_names(path):
    """Loads a label vocabulary saved by `save_label_names`.

    Args:
        path: str. File path, or a directory holding `labels.json`.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "labels.json")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    names = data.get("label_names") if isinstance(data, dict) else data
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names)):
        raise ValueError(f"{path}: label_names={names!r} must be a non-empty list of "
                         f"distinct strings")
    return names
