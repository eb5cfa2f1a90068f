"""Bad input beyond file formats, through the binaries: the kinds of paths a flag can name,
degenerate sizes, and value types inside records. Each ends in one `error:` line, exit 2, and
no partial output (helpers in test_bad_input.py)."""
import json
import os

import pytest

from tests.reliability.conftest import good_text_rows, write_digits_csv, write_text_config
from tests.reliability.test_bad_input import assert_no_trained_outputs, assert_one_line_error

MLP = ["--config=configs/mlp_digits.yaml", "--override=trainer.epochs=1"]


def _file(tmp_path, name="a_file.txt", text="x\n"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# name -> (binary, args with {tmp} and {file}, expected substrings of the error line)
PATH_CASES = {
    "model_dir_is_a_file": ("train", MLP + ["--model_dir={file}"], ["a_file.txt", "existing file", "directory"]),
    "model_dir_under_a_file": ("train", MLP + ["--model_dir={file}/run"],
                               ["model_dir=", "a_file.txt/run", "a_file.txt is a file", "allowed: a directory path"]),
    "config_is_a_directory": ("train", ["--config=configs", "--model_dir={tmp}/run"], ["configs", "is a directory"]),
    "export_base_is_a_file": ("export", ["--model_dir={mlp}", "--export_base={file}"], ["a_file.txt"]),
    "export_base_under_a_file": ("export", ["--model_dir={mlp}", "--export_base={file}/exports"],
                                 ["export.export_base=", "a_file.txt is a file", "allowed: a directory path"]),
    "evaluate_input_file_missing": ("evaluate", ["--model_dir={mlp}", "--input_file={tmp}/none.csv"], ["none.csv"]),
    "predict_model_is_a_training_run": ("predict", ["--model={mlp}", "--text=1"],
                                        ["holds no saved_model.pb", "allowed: <export_base>/<model_name>",
                                         "exported first"]),
    "predict_input_file_is_a_directory": ("predict", ["--model={tmp}/nothing", "--input_file={tmp}"], ["directory"]),
    "finetune_encoder_is_a_text_file": ("finetune", MLP + ["--model_dir={tmp}/run", "--override=finetune.encoder={file}"],
                                        ["a_file.txt"]),
    "train_source_is_an_empty_directory": ("train", MLP + ["--model_dir={tmp}/run", "--override=data.train={tmp}/empty"],
                                           ["empty"]),
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_paths_a_flag_can_name(binaries, tmp_path, mlp_model_dir, case):
    binary, args, expected = PATH_CASES[case]
    (tmp_path / "empty").mkdir()
    values = dict(tmp=tmp_path, file=_file(tmp_path), mlp=mlp_model_dir)
    result = binaries.run(binary, *[a.format(**values) for a in args])
    assert_one_line_error(result, expected)
    assert_no_trained_outputs(tmp_path / "run")
    assert os.path.isfile(values["file"]), "an existing file is never replaced"


SIZE_CASES = {
    "sequence_length_2": (["--override=data.sequence_length=2"], ["data.sequence_length=2", ">= 3"]),
    "batch_size_0": (["--override=data.batch_size=0"], ["data.batch_size=0", ">= 1"]),
    "vocab_size_3": (["--override=data.vocab_size=3"], ["data.vocab_size=3", ">= 16"]),
    "epochs_0": (["--override=trainer.epochs=0"], ["trainer.epochs=0", ">= 1"]),
    "negative_learning_rate": (["--override=trainer.learning_rate=-0.1"], ["trainer.learning_rate", "> 0"]),
    "dropout_1": (["--override=model.dropout=1.0"], ["model.dropout=1.0", "[0, 1)"]),
    "input_mask_rate_1": (["--override=data.input_mask_rate=1.0"], ["data.input_mask_rate=1.0", "[0, 1)"]),
    "crop_rate_above_1": (["--override=data.crop_rate=1.5"], ["data.crop_rate=1.5", "[0, 1]"]),
    "no_hidden_units": (["--override=model.hidden_units=[]"], ["model.hidden_units", "non-empty"]),
    "accumulation_beyond_the_data": (["--override=trainer.grad_accum_steps=1000"],
                                     ["grad_accum_steps=1000", "batches"]),
}


@pytest.mark.parametrize("case", sorted(SIZE_CASES))
def test_degenerate_sizes(binaries, tmp_path, case):
    extra, expected = SIZE_CASES[case]
    result = binaries.run("train", *MLP, f"--model_dir={tmp_path / 'run'}", *extra)
    assert_one_line_error(result, expected)
    assert_no_trained_outputs(tmp_path / "run")


def _jsonl(tmp_path, bad_record):
    lines = [json.dumps({"text": t, "label": l}, ensure_ascii=False) for t, l in good_text_rows()]
    lines.append(json.dumps(bad_record, ensure_ascii=False))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


RECORD_CASES = {
    "label_is_a_list": ({"text": "好", "label": ["pos"]}, ["train.jsonl:49", "'label'"]),
    "label_is_an_object": ({"text": "好", "label": {"name": "pos"}}, ["train.jsonl:49", "'label'"]),
    "text_is_null": ({"text": None, "label": "pos"}, ["train.jsonl:49", "'text'"]),
}


@pytest.mark.parametrize("case", sorted(RECORD_CASES))
def test_value_types_inside_records(binaries, tmp_path, case):
    record, expected = RECORD_CASES[case]
    config = write_text_config(tmp_path / "config.yaml", _jsonl(tmp_path, record))
    result = binaries.run("train", f"--config={config}", f"--model_dir={tmp_path / 'run'}")
    assert_one_line_error(result, expected)
    assert_no_trained_outputs(tmp_path / "run")


@pytest.mark.parametrize("value", ["abc", "nan", "inf"])
def test_non_numeric_or_non_finite_features(binaries, tmp_path, value):
    path = write_digits_csv(tmp_path / "digits.csv")
    lines = open(path).read().splitlines()
    fields = lines[5].split(",")
    fields[3] = value
    lines[5] = ",".join(fields)
    open(path, "w").write("\n".join(lines) + "\n")
    result = binaries.run("train", *MLP, f"--model_dir={tmp_path / 'run'}", f"--override=data.train={path}")
    assert_one_line_error(result, ["digits.csv:6", value])
    assert_no_trained_outputs(tmp_path / "run")


def test_pretraining_windows_longer_than_the_model(binaries, tmp_path):
    result = binaries.run("pretrain", "--config=configs/demo_zh_sentiment.yaml", f"--model_dir={tmp_path / 'run'}",
                          "--override=model.max_sequence_length=32", "--override=data.sequence_length=24",
                          "--override=data.limit=64", "--override=data.vocab_size=200")
    assert_one_line_error(result, ["data.pretrain_sequence_length=64", "model.max_sequence_length=32"])
    assert not os.path.exists(tmp_path / "run" / "encoder")
