"""The one reader of data files: extension table, UTF-8 decoding, CSV/TSV/JSONL rows, text lines.

Training sources, `evaluate --input_file` and `predict --input_file` all read files here:

* `FILE_FORMATS` maps an extension to "csv", "tsv" or "jsonl" (a header row for CSV/TSV, one
  JSON object a line for JSONL); any other extension is "lines" (one text a line) where a
  caller accepts plain text.
* A leading BOM is dropped, CRLF line ends are accepted, quoted CSV fields may hold newlines
  (kept as written), and blank lines are not records.
* Decoding is lenient (`decode`: bytes that are not UTF-8 survive as surrogates so that a
  per-record check can name the record and the bad-record policy can skip it) or strict
  (`decode_strict`: the first line that is not UTF-8 is an error).
* Bad rows (ragged, unparsable quoting, invalid JSON, non-objects, non-UTF-8 JSONL lines) go
  to a `BadRecordReport`, which raises a one-line `DataError` under "error" and counts them
  under "skip".
"""
import collections
import csv
import io
import itertools
import json
import os

from tfmodels.data.errors import DataError

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                ".ndjson": "jsonl", ".json": "jsonl"}
PLAIN_TEXT = "lines"
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_BOM = "\ufeff"
_QUOTING = "fields quoted with \" and doubled \"\" inside quotes"

Row = collections.namedtuple("Row", ["line", "values"])
Row.__doc__ = "One record: its first 1-based line number and a dict of column -> value."

Table = collections.namedtuple("Table", ["header", "rows"])
Table.__doc__ = ("Rows of one file, read lazily so that bad records are met in file order; "
                 "`header` is the CSV/TSV header row, None for JSONL.")


def allowed_extensions():
    """The extensions of table files, for error messages: ".csv, .tsv, ..."."""
    return ", ".join(FILE_FORMATS)


def file_format(path, plain_text=False):
    """The format of a file from its extension: "csv", "tsv", "jsonl" or "lines".

    Args:
        path: str. The file.
        plain_text: bool. Whether an unknown extension is a plain-text file (one text a line)
            rather than an error. Defaults to False.

    Raises:
        DataError: the extension is unknown and plain_text is False.
    """
    extension = os.path.splitext(str(path))[1].lower()
    if extension in FILE_FORMATS:
        return FILE_FORMATS[extension]
    if plain_text:
        return PLAIN_TEXT
    raise DataError(path, None, f"file extension {extension!r} unknown", allowed_extensions())


def read_bytes(path, allowed="a file"):
    """Returns the bytes of a file; a missing path, a directory or an unreadable file is an error.

    Args:
        path: str. The file.
        allowed: str. What the caller accepts, for the error message. Defaults to "a file".
    """
    path = str(path)
    if os.path.isdir(path):
        raise DataError(path, None, "is a directory, not a file", allowed)
    if not os.path.exists(path):
        raise DataError(path, None, "file does not exist", allowed)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise DataError(path, None, f"file cannot be read ({error.strerror})", allowed) from None


def has_bad_bytes(value):
    """True where lenient decoding met bytes that are not UTF-8 (kept as surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def decode(data):
    """Lenient UTF-8: bytes that are not UTF-8 become surrogates (see `has_bad_bytes`); BOM dropped."""
    text = data.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith(_BOM) else text


def decode_strict(data, source):
    """Strict UTF-8 (BOM dropped); the first line that is not UTF-8 raises a DataError naming it.

    Args:
        data: bytes or str. File content.
        source: str. File name for error messages.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        number = data.count(b"\n", 0, error.start) + 1
        raise DataError(source, number, f"line is not valid UTF-8 (byte 0x{data[error.start]:02x} "
                        f"at column {error.start - line_start + 1})",
                        "UTF-8 text; re-encode the input as UTF-8") from None


def split_lines(text):
    """Lines of a text: split at LF, a trailing CR dropped, no empty piece after a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def missing_columns(header, names):
    """The names (None and "" ignored) that are not in header, in order."""
    return [name for name in names if name and name not in header]


def check_columns(source, header, columns):
    """Raises a DataError on line 1 of source when a needed column is not in the header.

    Args:
        source: str. File or dataset name.
        header: list of str. Available columns.
        columns: iterable of str | None. Needed columns (None entries ignored).
    """
    missing = missing_columns(header, columns)
    if missing:
        raise DataError(source, 1, f"column(s) {', '.join(map(repr, missing))} not in header",
                        ", ".join(map(repr, header)))


def read_table_file(path, report, columns=()):
    """Reads a CSV/TSV/JSONL file (format from its extension) into a Table.

    Bytes that are not UTF-8 are found per record (lenient decoding), so that the bad-record
    policy applies to them.

    Args:
        path: str. The file.
        report: BadRecordReport. Bad-record policy and counts.
        columns: iterable of str | None. Columns a CSV/TSV header must hold. Defaults to ().
    """
    data = read_bytes(path, f"a {allowed_extensions()} file")
    return read_table(decode(data), path, file_format(path), report, columns)


def read_table(text, source, table_format, report, columns=()):
    """Parses decoded text as "csv", "tsv" or "jsonl" into a Table of Rows (an iterator).

    Args:
        text: str. Decoded file content.
        source: str. File name for messages.
        table_format: str. "csv", "tsv" or "jsonl".
        report: BadRecordReport. Bad-record policy and counts.
        columns: iterable of str | None. Columns a CSV/TSV header must hold. Defaults to ().
    """
    if table_format == "jsonl":
        return Table(None, _jsonl_rows(text, source, report))
    return _read_delimited(text, source, _DELIMITERS[table_format], report, columns)


def _read_delimited(text, source, delimiter, report, columns):
    """CSV/TSV with a header row: csv-module quoting, quoted newlines; an empty file has no rows."""
    lines = io.StringIO(text, newline="").readlines()
    reader = _csv_reader(lines, 0, delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return Table([], iter(()))
    except csv.Error as e:
        raise DataError(source, 1, f"header row unreadable ({e})", "a CSV header row") from None
    header = [name.strip() for name in header]
    check_columns(source, header, columns)
    rows = (Row(line, dict(zip(header, values)))
            for line, values in _csv_rows(lines, reader.line_num, delimiter, len(header), source, report))
    return Table(header, rows)


def _csv_reader(lines, first, delimiter):
    """A strict csv reader over `lines` from index `first` (its line_num counts from there)."""
    return csv.reader(itertools.islice(lines, first, None), delimiter=delimiter, strict=True)


def _csv_rows(lines, header_lines, delimiter, num_fields, source, report):
    """Yields (first line number, fields) of well-formed rows after the header's `header_lines`.

    Blank lines are not records; unparsable and ragged rows go to `report` (which raises under
    on_bad_record="error") and are not yielded. An unparsable row is one bad record on its first
    line, and reading starts again on the next line: an unclosed quote would otherwise swallow
    every row up to the next quote character into that one record.
    """
    offset = end_line = header_lines  # lines before the reader's first; the last line read
    reader = _csv_reader(lines, offset, delimiter)
    while True:
        start_line = end_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            report.records_read += 1
            report.bad("bad_quoting", source, start_line, f"unparsable row ({e})", _QUOTING)
            offset = end_line = start_line
            reader = _csv_reader(lines, offset, delimiter)
            continue
        end_line = offset + reader.line_num
        if not row:  # blank line: not a record
            continue
        report.records_read += 1
        if len(row) != num_fields:
            report.bad("ragged_row", source, start_line, f"row has {len(row)} fields, header "
                       f"has {num_fields}", f"{num_fields} fields")
            continue
        yield start_line, row


def _jsonl_rows(text, source, report):
    """Yields a Row per non-blank line holding a JSON object; other lines go to `report`."""
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        report.records_read += 1
        if has_bad_bytes(line):
            report.bad("non_utf8", source, number, "line holds bytes that are not UTF-8",
                       "UTF-8 text")
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as e:
            report.bad("bad_json", source, number, f"not valid JSON ({e.msg})",
                       "one JSON object per line")
            continue
        if not isinstance(values, dict):
            report.bad("bad_json", source, number, f"JSON value is a {type(values).__name__}",
                       "one JSON object per line")
            continue
        yield Row(number, values)


def text_lines(text, source, report):
    """Yields (line number, stripped line) of plain text, "" for blank lines.

    Each non-blank line counts as a record read; a line holding bytes that are not UTF-8 goes to `report` and is not yielded.

    Args:
        text: str. Leniently decoded content (see `decode`).
        source: str. File name for messages.
        report: BadRecordReport. Bad-record policy and counts.
    """
    for number, line in enumerate(split_lines(text), start=1):
        line = line.strip()
        if line:
            report.records_read += 1
        if line and has_bad_bytes(line):
            report.bad("non_utf8", source, number, "line holds bytes that are not UTF-8",
                       "UTF-8 text")
            continue
        yield number, line


__all__ = ["FILE_FORMATS", "PLAIN_TEXT", "Row", "Table", "allowed_extensions", "check_columns",
           "decode", "decode_strict", "file_format", "has_bad_bytes", "missing_columns",
           "read_bytes", "read_table", "read_table_file", "split_lines", "text_lines"]
