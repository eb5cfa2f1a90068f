"""The one file reader: extension table, decoding, rows, and its one-line errors."""
import os

import pytest

from tfmodels.data import DataError, load_feature_splits, load_text_classification, read_corpus
from tfmodels.data import files
from tfmodels.data.errors import BadRecordReport

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "configs")


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def load(train, **kwargs):
    kwargs.setdefault("validation_fraction", 0)
    return load_text_classification(train, **kwargs)


@pytest.mark.parametrize("extension,table_format", [(".csv", "csv"), (".TSV", "tsv"),
                                                    (".tab", "tsv"), (".jsonl", "jsonl"),
                                                    (".ndjson", "jsonl"), (".json", "jsonl")])
def test_extension_table(extension, table_format):
    assert files.file_format(f"data{extension}") == table_format


def test_unknown_extension_is_plain_text_only_where_asked():
    assert files.file_format("notes.txt", plain_text=True) == files.PLAIN_TEXT
    with pytest.raises(DataError, match=r"notes.txt: file extension '.txt' unknown \(allowed: "
                                        r"\.csv, \.tsv, \.tab, \.jsonl, \.ndjson, \.json\)"):
        files.file_format("notes.txt")


def test_tab_file_trains_like_tsv(tmp_path):
    path = write(tmp_path, "reviews.tab", "label\ttext\r\npos\t\"很好\n真的\"\r\nneg\t太差\r\n")
    splits = load(path)
    assert splits.train.texts == ["很好\n真的", "太差"] and splits.label_names == ["neg", "pos"]


def test_rows_are_read_lazily_in_file_order(tmp_path):
    """A bad record is reported at its own line, before any later bad record is met."""
    path = write(tmp_path, "two_bad.csv", "text,label\n好,pos\n,neg\n差,neg,extra\n")
    with pytest.raises(DataError, match="two_bad.csv:3: text column 'text' is empty"):
        load(path)


def test_decode_strict_names_line_byte_and_column():
    with pytest.raises(DataError, match=r"in.txt:3: line is not valid UTF-8 \(byte 0xff at "
                                        r"column 3\) \(allowed: UTF-8 text"):
        files.decode_strict(b"\xef\xbb\xbfok\nfine\nab\xff\n", "in.txt")
    assert files.decode_strict(b"\xef\xbb\xbfok\r\n", "in.txt") == "ok\r\n"
    assert files.split_lines("a\r\n\r\nb\n") == ["a", "", "b"]


# (JSONL line, expected reason)
WRONG_TYPES = [
    ('{"text": "好", "label": ["pos"]}', "label column 'label' holds a JSON array"),
    ('{"text": "好", "label": {"name": "pos"}}', "label column 'label' holds a JSON object"),
    ('{"text": ["好", "看"], "label": "pos"}', "text column 'text' holds a JSON array"),
]


@pytest.mark.parametrize("line,reason", WRONG_TYPES, ids=["label_list", "label_dict", "text_list"])
def test_jsonl_value_of_a_wrong_type(tmp_path, line, reason):
    path = write(tmp_path, "typed.jsonl", '{"text": "不错", "label": "pos"}\n' + line + "\n")
    with pytest.raises(DataError) as info:
        load(path)
    assert str(info.value) == (f"{path}:2: {reason} (allowed: a string, a number or a boolean)")
    splits = load(path, on_bad_record="skip")
    assert splits.report.counts == {"wrong_type": 1} and splits.train.texts == ["不错"]


def test_jsonl_numbers_and_booleans_are_labels(tmp_path):
    path = write(tmp_path, "n.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": true}\n')
    assert load(path).label_names == ["1", "true"]  # as CSV cells 1 and true read
    csv_path = write(tmp_path, "v.csv", "text,label\nc,true\nd,1\n")
    assert load(path, validation=csv_path).validation.labels.tolist() == [1, 0]


def test_directory_missing_and_unreadable_paths(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match=r"folder.csv: is a directory, not a file \(allowed: "):
        files.read_bytes(str(tmp_path / "folder.csv"))
    with pytest.raises(DataError, match=r"gone.csv: file does not exist \(allowed: a \.csv"):
        load_feature_splits(str(tmp_path / "gone.csv"))
    with pytest.raises(DataError, match=r"folder.csv: is a directory, not a file"):
        load_feature_splits(str(tmp_path / "folder.csv"))


@pytest.mark.parametrize("name,content", [("empty.csv", ""), ("empty.jsonl", ""),
                                          ("blank.jsonl", "\n\n"), ("header.tsv", "text\tlabel\n")])
def test_empty_files_are_empty_datasets(tmp_path, name, content):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=rf"{name}: dataset is empty \(no valid records\) "
                                        r"\(allowed: at least one valid record\)"):
        load(path)


def test_numeric_features_from_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path, "f.tab", "x1\tlabel\tx2\n1\ta\t2\n3\tb\t4\n")
    assert load_feature_splits(tsv, validation_fraction=0).train.features.tolist() == [[1, 2], [3, 4]]
    jsonl = write(tmp_path, "f.jsonl", '{"x1": 1, "x2": "2", "label": "a"}\n'
                                       '{"x1": 3, "x2": 4, "label": "b"}\n'
                                       '{"x1": 5, "label": "a"}\n'
                                       '{"x1": [5], "x2": 6, "label": "a"}\n')
    with pytest.raises(DataError, match=r"f.jsonl:3: record lacks feature 'x2' \(allowed: 'x1', "
                                        r"'x2'\)"):
        load_feature_splits(jsonl)
    splits = load_feature_splits(jsonl, on_bad_record="skip", validation_fraction=0)
    assert splits.train.features.tolist() == [[1, 2], [3, 4]]
    assert splits.report.counts == {"ragged_row": 1, "non_numeric": 1}
    with pytest.raises(DataError, match=r"only_label.csv:1: no feature column besides 'label'"):
        load_feature_splits(write(tmp_path, "only_label.csv", "label\na\n"))


def test_corpus_lines_count_and_skip(tmp_path):
    path = write(tmp_path, "c.txt", b"one\n\n\xff\ntwo\n")
    corpus = read_corpus(path, on_bad_record="skip")
    assert corpus.texts == ["one", "two"] and corpus.document_ids.tolist() == [0, 1]
    assert corpus.report.records_read == 3 and corpus.report.counts == {"non_utf8": 1}


def test_read_table_reports_each_bad_row_once():
    report = BadRecordReport("skip")
    table = files.read_table('{"a": 1}\n[1]\n{"a": \n{"a": 2}\n', "x.jsonl", "jsonl", report)
    assert [row.line for row in table.rows] == [1, 4]
    assert report.counts == {"bad_json": 2} and report.records_read == 4


def test_evaluate_input_file_uses_the_same_reader(tmp_path):
    from tfmodels.config import load_config
    from tfmodels.tasks import evaluate
    text_config = load_config(os.path.join(CONFIGS, "lstm_sentiment_zh.yaml"), ["data.text_column=review"])
    path = write(tmp_path, "eval.tab", "review\tlabel\n很好\tpositive\n太差\tnegative\n")
    examples = evaluate.input_file_examples(text_config, path, ["negative", "positive"])
    assert examples.texts == ["很好", "太差"] and examples.labels.tolist() == [1, 0]
    with pytest.raises(DataError, match=r"eval.jsonl:1: label column 'label' holds a JSON array"):
        evaluate.input_file_examples(text_config, write(
            tmp_path, "eval.jsonl", '{"review": "好", "label": ["positive"]}\n'), ["negative", "positive"])
    mlp_config = load_config(os.path.join(CONFIGS, "mlp_digits.yaml"))
    features = write(tmp_path, "eval_features.jsonl", '{"a": 1, "b": 2, "label": "7"}\n')
    examples = evaluate.input_file_examples(mlp_config, features, [str(i) for i in range(10)])
    assert examples.features.tolist() == [[1, 2]] and examples.labels.tolist() == [7]
