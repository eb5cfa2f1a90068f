"""Property-based tests: readers only ever raise DataError; the MLM masker keeps its invariants."""
import csv
import io
import json
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfmodels.data import DataError, load_feature_splits, load_text_classification, read_corpus
from tfmodels.data.pipelines import MaskedLMMasker

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT_EXTENSIONS = [".csv", ".tsv", ".jsonl"]
cells = st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "\"", "a,b", "x\ny", "\r", "\ufeff", "pos", "neg"]))


def read_text_file(content: bytes, extension: str):
    """Writes `content` to a temporary file and reads it as a labelled text dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data" + extension)
        with open(path, "wb") as f:
            f.write(content)
        return load_text_classification(path, validation_fraction=0)


def assert_reads_or_raises_data_error(read):
    try:
        read()
    except DataError as error:
        assert "\n" not in str(error)


@SETTINGS
@given(content=st.binary(max_size=300), extension=st.sampled_from(TEXT_EXTENSIONS))
def test_text_readers_on_random_bytes(content, extension):
    assert_reads_or_raises_data_error(lambda: read_text_file(content, extension))


@SETTINGS
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8),
       header=st.sampled_from([["text", "label"], ["label", "text"], ["text"], ["body", "label"], []]),
       newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_csv_reader_on_random_structures(rows, header, newline, bom):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    for row in [header] + rows:
        writer.writerow(row)
    content = (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8", errors="surrogatepass")
    try:
        splits = read_text_file(content, ".csv")
    except DataError:
        return
    assert len(splits.train) > 0
    assert all(text.strip() for text in splits.train.texts)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=6)),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(
                               st.sampled_from(["text", "label", "other"]), children, max_size=3), max_leaves=6)


@SETTINGS
@given(records=st.lists(st.one_of(json_values, st.dictionaries(st.sampled_from(["text", "label"]), json_values)),
                        max_size=6),
       garbage=st.sampled_from(["", "{", "not json", "[1,2"]))
def test_jsonl_reader_on_random_structures(records, garbage):
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + ([garbage] if garbage else [])
    content = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    assert_reads_or_raises_data_error(lambda: read_text_file(content, ".jsonl"))


@SETTINGS
@given(content=st.binary(max_size=300))
def test_numeric_csv_reader_on_random_bytes(content):
    def read():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "features.csv")
            with open(path, "wb") as f:
                f.write(b"f0,f1,label\n" + content)
            return load_feature_splits(path, validation_fraction=0)
    assert_reads_or_raises_data_error(read)


@SETTINGS
@given(content=st.binary(max_size=300), extension=st.sampled_from([".txt", ".jsonl"]))
def test_corpus_reader_on_random_bytes(content, extension):
    def read():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "corpus" + extension)
            with open(path, "wb") as f:
                f.write(content)
            return read_corpus([path])
    assert_reads_or_raises_data_error(read)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)] + [f"##p{i}" for i in range(10)]
SPECIAL = {0, 2, 3}  # [PAD], [CLS], [SEP]: never selected


@st.composite
def packed_batches(draw):
    """[B, L] ids laid out like packed sequences: [CLS] tokens [SEP] then [PAD]s."""
    batch, length = draw(st.integers(1, 4)), draw(st.integers(3, 24))
    rows = []
    for _ in range(batch):
        used = draw(st.integers(2, length))
        body = draw(st.lists(st.integers(1, len(VOCAB) - 1).filter(lambda i: i not in SPECIAL),
                             min_size=used - 2, max_size=used - 2))
        rows.append([2] + body + [3] + [0] * (length - used))
    return np.array(rows, np.int32)


_MASKERS = {}


def masker(max_predictions, mask_rate, whole_word):
    key = (max_predictions, mask_rate, whole_word)
    if key not in _MASKERS:
        _MASKERS[key] = MaskedLMMasker(VOCAB, max_predictions, mask_rate=mask_rate, whole_word=whole_word)
    return _MASKERS[key]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=packed_batches(), max_predictions=st.integers(1, 8), mask_rate=st.sampled_from([0.15, 0.5, 0.9]),
       whole_word=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_masker_invariants(ids, max_predictions, mask_rate, whole_word, seed):
    masked, positions, mask_ids, weights = (t.numpy() for t in masker(max_predictions, mask_rate, whole_word)(
        tf.constant(ids), tf.constant([seed, 7], tf.int64)))
    batch, length = ids.shape
    assert positions.shape == mask_ids.shape == weights.shape == (batch, max_predictions)
    assert set(np.unique(weights)) <= {0.0, 1.0}
    for row in range(batch):
        chosen = positions[row][weights[row] == 1]
        maskable = [i for i in range(length) if ids[row, i] not in SPECIAL]
        assert weights[row].sum() <= min(max_predictions, len(maskable))
        # weights are a prefix; chosen positions are distinct, in range, never special tokens
        assert list(weights[row]) == sorted(weights[row], reverse=True)
        assert len(set(chosen)) == len(chosen) and all(0 <= p < length for p in chosen)
        assert not SPECIAL & {int(ids[row, p]) for p in chosen}
        np.testing.assert_array_equal(mask_ids[row][weights[row] == 1], ids[row, chosen])
        assert (mask_ids[row][weights[row] == 0] == 0).all()
        # unselected tokens and every special token keep their ids
        untouched = [i for i in range(length) if i not in set(chosen)]
        np.testing.assert_array_equal(masked[row, untouched], ids[row, untouched])
        # replacements are [MASK], the original or a non-special token
        for p in chosen:
            assert masked[row, p] == 4 or masked[row, p] == ids[row, p] or masked[row, p] not in SPECIAL | {1, 4}
        # expected count: floor(rate * n + u) words, so within [floor(rate*n), ceil(rate*n)] when not capped
        if not whole_word and len(chosen) < max_predictions:
            n = len(maskable)
            assert np.floor(mask_rate * n) <= len(chosen) <= np.ceil(mask_rate * n)
