"""Numeric features for the MLP: CSV/TSV/JSONL files, TFDS images, builtin:digits; the Normalizer."""
import itertools
import json
import math

import numpy as np

from tfmodels.data import builtin, files, tfds_source
from tfmodels.data.errors import BadRecordReport, DataError
from tfmodels.data.examples import (FeatureExamples, FeatureSplits, require_examples,
                                    sorted_label_names, stratified_split)
from tfmodels.data.text_records import field_text

BUILTIN_FEATURES = "builtin:digits"


class Normalizer:
    """Per-feature standardization with statistics from the training split only.

    Args:
        mean: array-like float. Per-feature mean.
        std: array-like float. Per-feature standard deviation (constant features get 1).
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean shape {self.mean.shape} != std shape {self.std.shape}")

    @classmethod
    def fit(cls, train_features, epsilon=1e-6):
        """Computes mean/std over axis 0 of the TRAINING features."""
        features = np.asarray(train_features, dtype=np.float64)
        std = features.std(axis=0)
        return cls(features.mean(axis=0), np.where(std < epsilon, 1.0, std))

    def __call__(self, features):
        """Returns (features - mean) / std as float32 (numpy in, numpy out; tensors in graph)."""
        if isinstance(features, np.ndarray) or isinstance(features, (list, tuple)):
            return ((np.asarray(features, np.float32) - self.mean) / self.std).astype(np.float32)
        import tensorflow as tf
        return (tf.cast(features, tf.float32) - self.mean) / self.std

    def save(self, path):
        """Writes {"mean": [...], "std": [...], "shape": [...]} as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"mean": self.mean.ravel().tolist(), "std": self.std.ravel().tolist(),
                       "shape": list(self.mean.shape)}, f)
        return path

    @classmethod
    def load(cls, path):
        """Reads a Normalizer saved by `save`."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        missing = [k for k in ("mean", "std", "shape") if k not in data]
        if missing:
            raise ValueError(f"{path}: keys {missing} missing (required: mean, std, shape)")
        shape = tuple(data["shape"])
        return cls(np.reshape(data["mean"], shape), np.reshape(data["std"], shape))


def _number(value):
    """A float from a number or a numeric string; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _feature_row(values, feature_columns, path, line, report):
    """The floats of one record's feature columns; None (after telling `report`) if one is bad."""
    row = []
    for column in feature_columns:
        if column not in values:
            report.bad("ragged_row", path, line, f"record lacks feature {column!r}",
                       ", ".join(map(repr, feature_columns)))
            return None
        number = _number(values[column])
        if number is None:
            report.bad("non_numeric", path, line, f"value {values[column]!r} is not a number (column {column!r})",
                       "numbers")
            return None
        if not math.isfinite(number):  # one NaN or inf makes the training loss NaN
            report.bad("non_finite", path, line, f"value {values[column]!r} is not finite (column {column!r})",
                       "finite numbers")
            return None
        row.append(number)
    return row


def _read_numeric_file(path, label_column, report):
    """Numeric CSV/TSV (header row) or JSONL (keys of the first record) with a label column.

    Returns:
        (float32 features [N, F], list of N label strings).
    """
    table = files.read_table_file(path, report, [label_column])
    if table.header == []:
        raise DataError(path, 1, "missing header row", "a CSV header row")
    first = None if table.header else next(table.rows, None)
    if table.header is None and first is None:  # JSONL without records: an empty dataset
        return np.zeros([0, 0], np.float32), []
    columns = table.header or list(first.values)  # the header was checked for label_column
    feature_columns = [column for column in columns if column != label_column]
    if not feature_columns:
        raise DataError(path, 1, f"no feature column besides {label_column!r}",
                        "numeric feature columns and a label column")
    rows, labels = [], []
    for row in itertools.chain([first] if first else [], table.rows):
        label = field_text(row.values, label_column, "label", path, row.line, report)
        features = label and _feature_row(row.values, feature_columns, path, row.line, report)
        if label and features is not None:
            rows.append(features)
            labels.append(label)
    return np.asarray(rows, np.float32).reshape([len(rows), len(feature_columns)]), labels


def _tfds_features(source, split):
    """Flattened image (or first) feature as float32 rows, and label ids as strings."""
    examples, info = tfds_source.load_tfds(source, split)
    keys = list(info.features.keys())
    image_key = "image" if "image" in keys else keys[0]
    features, labels = [], []
    for example in examples:
        features.append(np.asarray(example[image_key], np.float32).reshape([-1]))
        labels.append(str(int(example["label"])))
    return np.stack(features) if features else np.zeros([0, 1], np.float32), labels


def _raw_feature_splits(train, validation, test, label_column, report):
    """{split name: (features, label strings)}; a TFDS train without a split adds its test."""
    def read(source, split):
        if tfds_source.is_tfds_source(source):
            return _tfds_features(source, split)
        return _read_numeric_file(source, label_column, report)

    raw = {"train": read(train, "train")}
    for name, source in (("validation", validation), ("test", test)):
        if source is not None:
            raw[name] = read(source, name)
    if (test is None and tfds_source.is_tfds_source(train)
            and tfds_source.parse_tfds_source(train).split is None):
        raw["test"] = read(train, "test")
    return raw


def _feature_examples(features, labels, label_names, split_name, report):
    """FeatureExamples of the labels in label_names; the others go to `report`."""
    index = {name: i for i, name in enumerate(label_names)}
    for label in labels:
        if label not in index:
            report.bad("unknown_label", f"{split_name} split", None,
                       f"label {label!r} not in the label vocabulary",
                       ", ".join(map(repr, label_names)))
    keep = [i for i, label in enumerate(labels) if label in index]
    return FeatureExamples(features[keep], [index[labels[i]] for i in keep])


def load_feature_splits(train, validation=None, test=None, *, label_column="label",
                        on_bad_record="error", label_names=None, validation_fraction=0.1,
                        seed=42):
    """Loads numeric features for the MLP: `builtin:digits`, a `tfds:` source or a numeric file.

    Labels map through the sorted training labels (or `label_names`); a held-out
    stratified `validation_fraction` of train is used when `validation` is None.
    Compute a `Normalizer` with `Normalizer.fit(splits.train.features)`.

    Args:
        train: str. "builtin:digits", "tfds:mnist" (image flattened) or a numeric
            CSV/TSV/JSONL path (every column but the label is a feature).
        validation: str | None. Same kinds of source.
        test: str | None. Same kinds of source ("tfds:mnist" uses its test split).
        label_column: str. Label column/key. Defaults to "label".
        on_bad_record: str. "error" (default) or "skip".
        label_names: list[str] | None. Fixed label vocabulary.
        validation_fraction: float. Held out of train when validation is None.
        seed: int. Split seed. Defaults to 42.

    Returns:
        FeatureSplits with `.report`.
    """
    report = BadRecordReport(on_bad_record)
    if train == BUILTIN_FEATURES:
        splits = builtin.load_digits_splits(seed)
        splits.report = report
        return splits
    raw = _raw_feature_splits(train, validation, test, label_column, report)
    label_names = list(label_names or sorted_label_names(raw["train"][1]))
    sources = {"train": train, "validation": validation, "test": test}
    examples = {}
    for name, (features, labels) in raw.items():
        examples[name] = _feature_examples(features, labels, label_names, name, report)
        require_examples(examples[name], sources.get(name) or train)
    train_examples = examples["train"]
    if validation is None and validation_fraction:
        train_part, held_out = stratified_split(
            train_examples.labels, (1 - validation_fraction, validation_fraction), seed)
        examples["validation"] = FeatureExamples(train_examples.features[held_out],
                                                 train_examples.labels[held_out])
        train_examples = FeatureExamples(train_examples.features[train_part],
                                         train_examples.labels[train_part])
    splits = FeatureSplits(train_examples, examples.get("validation"), examples.get("test"),
                           label_names=label_names, report=report)
    splits.stats = {"split_counts": {n: len(e) for n, e in splits.splits().items()},
                    "bad_records": report.as_dict()}
    return splits


__all__ = ["BUILTIN_FEATURES", "Normalizer", "load_feature_splits"]
