"""Tests for tfmodels.export.predict: reading inputs, batched predict, JSON lines."""
import io
import json

import pytest

import export_tiny_models as tiny
from tfmodels.export import predict, saved_model


# --- reading inputs --------------------------------------------------------------------------


def test_texts_are_returned_in_order():
    assert predict.read_predict_inputs(texts=["好", ""]) == ["好", ""]


def test_text_file_one_text_per_line_keeps_blank_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeff很好\r\n\n太坏了\n".encode("utf-8"))
    assert predict.read_predict_inputs(input_file=str(path)) == ["很好", "", "太坏了"]


def test_texts_then_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("b\n", encoding="utf-8")
    assert predict.read_predict_inputs(texts=["a"], input_file=str(path)) == ["a", "b"]


def test_csv_and_tsv_columns(tmp_path):
    csv_path = tmp_path / "in.csv"
    csv_path.write_text('id,text,label\n1,"很好, 真的",1\n2,坏,0\n', encoding="utf-8")
    assert predict.read_predict_inputs(input_file=str(csv_path)) == ["很好, 真的", "坏"]
    tsv_path = tmp_path / "in.tsv"
    tsv_path.write_text("q\tp\n你好\t是\n", encoding="utf-8")
    assert predict.read_predict_inputs(input_file=str(tsv_path), column="q,p") == [("你好", "是")]


def test_jsonl_column(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"review": "好"}\n\n{"review": "坏", "x": 1}\n', encoding="utf-8")
    assert predict.read_predict_inputs(input_file=str(path), column="review") == ["好", "坏"]


def test_stdin_bytes_text_and_jsonl():
    assert predict.read_predict_inputs(stdin=io.BytesIO("一\n二\n".encode())) == ["一", "二"]
    assert predict.read_predict_inputs(stdin=io.StringIO("一\n")) == ["一"]
    assert predict.read_predict_inputs(stdin=io.BytesIO(b'{"text": "x"}\n'),
                                       column="text") == ["x"]


def test_non_utf8_line_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("很好\n".encode() + "坏".encode("gbk") + b"\n")
    with pytest.raises(predict.PredictInputError, match=r"bad.txt:2: line is not valid UTF-8"):
        predict.read_predict_inputs(input_file=str(path))
    with pytest.raises(predict.PredictInputError, match=r"<stdin>:1: line is not valid UTF-8"):
        predict.read_predict_inputs(stdin=io.BytesIO(b"\xff\n"))
    # Nothing to predict is an error, as an empty --input_file is (a blank line is an empty text).
    with pytest.raises(predict.PredictInputError, match=r"^<stdin>: holds no input \(allowed: "):
        predict.read_predict_inputs(stdin=io.BytesIO(b""))


def test_input_errors_name_file_line_and_column(tmp_path):
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,sentence\n1,好\n", encoding="utf-8")
    with pytest.raises(predict.PredictInputError, match="in.csv:1: column 'text' not in header; "
                                                        "choose one of id, sentence"):
        predict.read_predict_inputs(input_file=str(csv_path))
    jsonl_path = tmp_path / "in.jsonl"
    jsonl_path.write_text('{"text": "a"}\n{"txt": "b"}\n', encoding="utf-8")
    with pytest.raises(predict.PredictInputError, match="in.jsonl:2: key 'text' missing"):
        predict.read_predict_inputs(input_file=str(jsonl_path))
    with pytest.raises(predict.PredictInputError, match="column='text' given but"):
        (tmp_path / "in.txt").write_text("a\n")
        predict.read_predict_inputs(input_file=str(tmp_path / "in.txt"), column="text")
    with pytest.raises(predict.PredictInputError, match="does not exist"):
        predict.read_predict_inputs(input_file=str(tmp_path / "missing.txt"))


def test_tab_file_is_a_table_like_in_training(tmp_path):
    """A `.tab` file (accepted by training) is read by its header, not as raw lines."""
    path = tmp_path / "in.tab"
    path.write_bytes("\ufeffid\ttext\r\n1\t\"很好\n真的\"\r\n2\t坏\r\n".encode("utf-8"))
    assert predict.read_predict_inputs(input_file=str(path)) == ["很好\n真的", "坏"]
    ndjson = tmp_path / "in.ndjson"
    ndjson.write_text('{"text": "好"}\n', encoding="utf-8")
    assert predict.read_predict_inputs(input_file=str(ndjson)) == ["好"]


def test_file_errors_are_one_line_naming_file_and_line(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('text,id\n"多\n行",1\n坏,2,3\n', encoding="utf-8")
    with pytest.raises(predict.PredictInputError,
                       match=r"ragged.csv:4: row has 3 fields, header has 2 \(allowed: 2 fields\)"):
        predict.read_predict_inputs(input_file=str(ragged))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(predict.PredictInputError, match=r"folder.csv: is a directory, not a file "
                                                        r"\(allowed: one text per line, or a "):
        predict.read_predict_inputs(input_file=str(tmp_path / "folder.csv"))
    for name in ("empty.txt", "empty.jsonl", "header_only.tsv"):
        (tmp_path / name).write_text("text\n" if name.endswith(".tsv") else "", encoding="utf-8")
        with pytest.raises(predict.PredictInputError, match=rf"{name}: file holds no input"):
            predict.read_predict_inputs(input_file=str(tmp_path / name))
    array = tmp_path / "array.jsonl"
    array.write_text('{"text": "a"}\n["b"]\n', encoding="utf-8")
    with pytest.raises(predict.PredictInputError, match=r"array.jsonl:2: JSON value is a list"):
        predict.read_predict_inputs(input_file=str(array))


def test_write_jsonl_keeps_non_ascii(tmp_path):
    out = io.StringIO()
    assert predict.write_jsonl([{"input": "好", "label": "positive"}], out) == 1
    assert out.getvalue() == '{"input": "好", "label": "positive"}\n'
    path = tmp_path / "out.jsonl"
    predict.write_jsonl([{"a": 1}, {"a": 2}], str(path))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]


# --- predicting ------------------------------------------------------------------------------


def test_predict_texts_batches_give_same_results(text_export):
    servable = saved_model.load_servable(text_export)
    texts = ["我喜欢这个电影", "", "很" * 100, "坏"]
    one_batch = predict.predict_texts(servable, texts)
    batched = predict.predict_texts(servable, texts, batch_size=3)
    # Equal up to float rounding: oneDNN may pick other kernels for another batch size.
    for result, reference in zip(batched, one_batch, strict=True):
        assert {key: result[key] for key in ("input", "label", "class_id")} == {
            key: reference[key] for key in ("input", "label", "class_id")}
        assert result["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-6)
    assert [result["input"] for result in one_batch] == texts
    for result in one_batch:
        assert set(result["probabilities"]) == set(tiny.CLASS_NAMES)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
        assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-5
    assert predict.predict_texts(servable, []) == []
    with pytest.raises(predict.PredictInputError, match="batch_size=0 invalid"):
        predict.predict_texts(servable, texts, batch_size=0)
    # A number in a JSONL text field is a text, as the training reader takes it; an array is not.
    number = predict.predict_texts(servable, [5])[0]
    assert number["probabilities"] == pytest.approx(predict.predict_texts(servable, ["5"])[0]["probabilities"])
    with pytest.raises(predict.PredictInputError, match=r"^input 2: \['a'\] is not a text; allowed: a string, a number or a boolean$"):
        predict.predict_texts(servable, ["好", ["a"]])


def test_run_predict_on_mlp_export_from_stdin(mlp_export):
    out = io.StringIO()
    count = predict.run_predict(mlp_export, stdin=io.BytesIO(b"0,10,20,30\n1 2 3 4\n"),
                                output=out, batch_size=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == 2 and [line["input"] for line in lines] == ["0,10,20,30", "1 2 3 4"]
    assert all(set(line["probabilities"]) == {"a", "b", "c"} for line in lines)
    with pytest.raises(predict.PredictInputError, match="input 1: 3 features, the export takes 4"):
        predict.predict_texts(mlp_export, ["1,2,3"])


def test_run_predict_on_mlp_export_from_table_files(mlp_export, tmp_path):
    jsonl = tmp_path / "features.jsonl"
    jsonl.write_text('{"x": [0, 10, 20, 30]}\n{"x": "1 2 3 4"}\n', encoding="utf-8")
    tab = tmp_path / "features.tab"
    tab.write_text("id\tx\n1\t0,10,20,30\n2\t1 2 3 4\n", encoding="utf-8")
    outputs = []
    for path in (jsonl, tab):
        out = io.StringIO()
        assert predict.run_predict(mlp_export, input_file=str(path), column="x", output=out) == 2
        outputs.append([json.loads(line) for line in out.getvalue().splitlines()])
    assert [line["input"] for line in outputs[0]] == [[0, 10, 20, 30], "1 2 3 4"]
    assert [line["input"] for line in outputs[1]] == ["0,10,20,30", "1 2 3 4"]
    assert [line["label"] for line in outputs[0]] == [line["label"] for line in outputs[1]]


def test_an_output_path_that_cannot_be_written_is_refused_before_predicting(tmp_path):
    for path, reason in ((tmp_path, "is a directory"), (tmp_path / "missing" / "out.jsonl",
                                                         f"its directory {tmp_path / 'missing'} does not exist")):
        with pytest.raises(predict.PredictInputError, match=f"^--output={path}: {reason}; allowed: "):
            predict.run_predict(str(tmp_path / "no_export"), texts=["好"], output=str(path))
    predict.check_output_path(str(tmp_path / "out.jsonl"))
