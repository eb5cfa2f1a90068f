"""Batched prediction with an exported SavedModel: read inputs, predict, write JSON lines.

Inputs (`read_predict_inputs`), read by `tfmodels.data.files` like training data:
  - `texts`: strings given directly (e.g. repeated `--text` flags);
  - `input_file`: a table file of `tfmodels.data.files.FILE_FORMATS` (`.csv` / `.tsv` / `.tab`
    with a header row, `.jsonl` / `.ndjson` / `.json` with one JSON object a line; quoted
    newlines, BOM and CRLF handled): the text is the field named by `column` (default "text";
    "a,b" names the two fields of a sentence pair). Any other extension: one text per line,
    blank lines kept as empty texts so the output has one line per input line. A file with no
    input is an error;
  - stdin when neither is given: one text per line (JSON objects a line when `column` is given).
Input must be UTF-8 (a leading BOM is dropped); a line that is not raises
`PredictInputError("<file>:<line>: ...")`, as does a ragged CSV row or a line that is not a
JSON object.

Behaviour of the text classifier export: an empty text is classified from `[CLS] [SEP]` alone
(valid probabilities, usually close to the prior); a text longer than the export's
sequence_length keeps sequence_length - 2 WordPiece tokens: its first ones, or its first and last
ones for an export made with `data.truncation: head_tail` (the export's metadata names which).

MLP exports take numeric features: each input is a list of numbers or a string of numbers
separated by commas or spaces, normalized inside the exported graph.

Each result is `{"input": ..., "label": str, "class_id": int, "probabilities": {name: float}}`.
"""
import contextlib
import json
import os
import re
import sys

import numpy as np
import tensorflow as tf

from tfmodels.data import files
from tfmodels.data.errors import BadRecordReport, DataError
from tfmodels.data.text_records import SCALAR_TYPES, scalar_text
from tfmodels.export.saved_model import Servable, load_servable

DEFAULT_COLUMN = "text"
STDIN_NAME = "<stdin>"
INPUT_FILE_FORMS = f"one text per line, or a {files.allowed_extensions()} file"


class PredictInputError(ValueError):
    """A predict input (file, line, column or value) is invalid."""


@contextlib.contextmanager
def _as_predict_errors():
    """Re-raises the file reader's DataErrors as PredictInputError (same one-line message)."""
    try:
        yield
    except DataError as error:
        raise PredictInputError(str(error)) from None


# ---------------------------------------------------------------------------------------------
# Reading inputs


def read_predict_inputs(texts=None, input_file=None, column=None, stdin=None):
    """Returns the inputs to predict, from texts, then input_file; from stdin if neither is given.

    Args:
        texts: list of str. Inputs given directly. Defaults to None.
        input_file: str. Text, CSV/TSV or JSONL file (see the module docstring).
            Defaults to None.
        column: str. CSV/JSONL field holding the text; "a,b" reads sentence pairs as tuples.
            Defaults to "text" for CSV/JSONL files; not allowed for plain text files.
        stdin: binary or text stream read when neither texts nor input_file is given.
            Defaults to sys.stdin.buffer.

    Returns:
        list. str per input (tuples of str for pairs; raw values for numeric JSONL fields).
    """
    inputs = []
    for index, text in enumerate(texts or []):
        if not isinstance(text, str):
            raise PredictInputError(f"texts[{index}]={text!r} is not a str")
        inputs.append(text)
    if input_file is not None:
        inputs.extend(read_input_file(input_file, column))
    if not texts and input_file is None:
        stream = stdin if stdin is not None else sys.stdin.buffer
        text = _decode(stream.read(), STDIN_NAME)
        inputs.extend(_column_values(text, STDIN_NAME, "jsonl", column) if column else
                      files.split_lines(text))
        if not inputs:
            raise PredictInputError(f"{STDIN_NAME}: holds no input (allowed: one text per line, or JSON "
                                    "lines with --column; or pass --text / --input_file)")
    return inputs


def read_input_file(path, column=None):
    """Returns the inputs of one file: a column of a CSV/TSV/JSONL file, else its lines.

    Args:
        path: str. The file; its extension picks the format (tfmodels.data.files).
        column: str. Field name ("a,b" for pairs). Defaults to "text" for CSV/JSONL files.
    """
    with _as_predict_errors():
        data = files.read_bytes(path, INPUT_FILE_FORMS)
        table_format = files.file_format(path, plain_text=True)
    text = _decode(data, path)
    if table_format != files.PLAIN_TEXT:
        values = _column_values(text, path, table_format, column or DEFAULT_COLUMN)
    elif column is not None:
        raise PredictInputError(f"column={column!r} given but {path!r} is a plain text file; use "
                                f"a {files.allowed_extensions()} file")
    else:
        values = files.split_lines(text)
    if not values:
        raise PredictInputError(f"{path}: file holds no input (allowed: {INPUT_FILE_FORMS})")
    return values


def decode_lines(data, source):
    """Splits bytes into UTF-8 lines (final newline, CR and leading BOM dropped).

    Args:
        data: bytes or str. File content.
        source: str. File name for error messages.

    Raises:
        PredictInputError: a line is not UTF-8, naming source:line.
    """
    return files.split_lines(_decode(data, source))


def _decode(data, source):
    with _as_predict_errors():
        return files.decode_strict(data, source)


def _columns(column):
    names = [name.strip() for name in column.split(",")]
    if not 1 <= len(names) <= 2 or not all(names):
        raise PredictInputError(f"column={column!r} invalid; use one field name, or two "
                                "separated by a comma for sentence pairs")
    return names


def _pick(record, names):
    return record[names[0]] if len(names) == 1 else tuple(record[name] for name in names)


def _check_header(header, path, column, names):
    if not header:
        raise PredictInputError(f"{path}:1: empty file; expected a header row with {column!r}")
    missing = files.missing_columns(header, names)
    if missing:
        raise PredictInputError(f"{path}:1: column {missing[0]!r} not in header; choose one of "
                                f"{', '.join(header)}")


def _column_values(text, path, table_format, column):
    """The `column` field of each row of a decoded CSV/TSV/JSONL text (a tuple for "a,b")."""
    names = _columns(column)
    with _as_predict_errors():
        table = files.read_table(text, path, table_format, BadRecordReport("error"))
        if table.header is not None:
            _check_header(table.header, path, column, names)
        values = []
        for row in table.rows:
            missing = files.missing_columns(row.values, names)
            if missing:
                raise PredictInputError(f"{path}:{row.line}: key {missing[0]!r} missing; keys "
                                        f"are {', '.join(sorted(row.values))}")
            values.append(_pick(row.values, names))
    return values


# ---------------------------------------------------------------------------------------------
# Predicting


def predict_texts(servable, texts, batch_size=64):
    """Predicts in batches with a text classifier (or MLP) export.

    Args:
        servable: Servable or str. A loaded export, or a path for load_servable.
        texts: list. str per input; (text, text_pair) for pair models; for MLP exports, lists
            of numbers or strings of numbers.
        batch_size: int. Examples per signature call. Defaults to 64.

    Returns:
        list of dict. {"input", "label", "class_id", "probabilities": {class name: float}}.
    """
    if not isinstance(servable, Servable):
        servable = load_servable(servable)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PredictInputError(f"batch_size={batch_size!r} invalid; use an int >= 1")
    kind = servable.kind
    if kind not in ("text_classifier", "mlp"):
        raise PredictInputError(f"export {servable.path!r} is a {kind}; predict needs a "
                                "text_classifier or mlp export")
    to_inputs = _text_inputs if kind == "text_classifier" else _feature_inputs
    signature = servable.signature()
    texts = list(texts)
    results = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        outputs = signature(**to_inputs(servable, batch, start))
        results.extend(_format_results(servable, batch, outputs))
    return results


def _text_inputs(servable, batch, start):
    if "text_pair" in servable.input_names():
        for offset, item in enumerate(batch):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise PredictInputError(f"input {start + offset + 1}: {item!r} is not a (text, "
                                        "text_pair) pair; this export takes sentence pairs (from a CSV or "
                                        "JSONL file: --column=text,text_pair)")
        pairs = [tuple(_text(value, start + offset) for value in item) for offset, item in enumerate(batch)]
        return {"text": tf.constant([a for a, _ in pairs], tf.string),
                "text_pair": tf.constant([b for _, b in pairs], tf.string)}
    return {"text": tf.constant([_text(item, start + offset) for offset, item in enumerate(batch)], tf.string)}


def _text(value, index):
    """One input text: a string, or a number or boolean as the training reader takes it (`scalar_text`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, SCALAR_TYPES):
        return scalar_text(value)
    raise PredictInputError(f"input {index + 1}: {value!r} is not a text; allowed: a string, a number or a boolean")


def _feature_inputs(servable, batch, start):
    _, specs = servable.signature().structured_input_signature
    (name, spec), = specs.items()
    feature_shape = spec.shape.as_list()[1:]
    width = int(np.prod(feature_shape))
    rows = []
    for offset, item in enumerate(batch):
        values = _parse_numbers(item, start + offset + 1)
        if len(values) != width:
            raise PredictInputError(f"input {start + offset + 1}: {len(values)} features, the "
                                    f"export takes {width} (shape {feature_shape})")
        rows.append(values)
    return {name: tf.constant(np.array(rows, np.float32).reshape([-1, *feature_shape]))}


def _parse_numbers(item, number):
    if isinstance(item, str):
        item = [part for part in re.split(r"[,\s]+", item.strip()) if part]
    try:
        return [float(value) for value in np.ravel(item)]
    except (TypeError, ValueError):
        raise PredictInputError(f"input {number}: {item!r} is not a list of numbers") from None


def _format_results(servable, batch, outputs):
    probabilities = outputs["probabilities"].numpy()
    class_ids = outputs["class_ids"].numpy()
    names = servable.metadata.get("class_names") or [
        str(index) for index in range(probabilities.shape[-1])]
    results = []
    for item, row, class_id in zip(batch, probabilities, class_ids):
        results.append({
            "input": list(item) if isinstance(item, tuple) else item,
            "label": names[int(class_id)],
            "class_id": int(class_id),
            "probabilities": {name: float(p) for name, p in zip(names, row)},
        })
    return results


# ---------------------------------------------------------------------------------------------
# Writing


def check_output_path(path) -> None:
    """Raises PredictInputError when `path` cannot be written, before any input is read or predicted."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        reason = "is a directory"
    elif not os.path.isdir(parent):
        reason = f"its directory {parent} does not exist"
    elif not os.access(parent, os.W_OK) or os.path.exists(path) and not os.access(path, os.W_OK):
        reason = "is not writable"
    else:
        return
    raise PredictInputError(f"--output={path}: {reason}; allowed: a file path in a writable directory")


def write_jsonl(results, out):
    """Writes one JSON object a line (UTF-8, non-ASCII kept) and returns the number written.

    Args:
        results: iterable of dict. Predictions.
        out: str or text stream. Destination path, or e.g. sys.stdout.
    """
    if isinstance(out, (str, os.PathLike)):
        with open(out, "w", encoding="utf-8") as f:
            return write_jsonl(results, f)
    count = 0
    for result in results:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        count += 1
    out.flush()
    return count


def run_predict(export_path, texts=None, input_file=None, column=None, output=None,
                batch_size=64, stdin=None):
    """Loads an export, reads the inputs, predicts and writes JSON lines (one call per binary).

    Args:
        export_path: str. Version dir, model dir (highest version) or export base.
        texts: list of str. Inputs given directly. Defaults to None.
        input_file: str. Input file (see read_predict_inputs). Defaults to None.
        column: str. CSV/JSONL field. Defaults to None ("text" for CSV/JSONL).
        output: str or text stream. Destination. Defaults to sys.stdout.
        batch_size: int. Examples per batch. Defaults to 64.
        stdin: stream read when neither texts nor input_file is given. Defaults to sys.stdin.

    Returns:
        int. Number of predictions written.
    """
    if isinstance(output, (str, os.PathLike)):
        check_output_path(output)
    inputs = read_predict_inputs(texts=texts, input_file=input_file, column=column, stdin=stdin)
    results = predict_texts(load_servable(export_path), inputs, batch_size=batch_size)
    return write_jsonl(results, output if output is not None else sys.stdout)


__all__ = ["PredictInputError", "check_output_path", "decode_lines", "predict_texts", "read_input_file",
           "read_predict_inputs", "run_predict", "write_jsonl"]
