"""Bad inputs through the binaries: one `error:` line naming the culprit, exit 2, no partial output."""
import json
import os

import pytest

from tests.reliability.conftest import (good_text_rows, write_digits_csv, write_text_config,
                                        write_text_csv)

TRAINED_OUTPUTS = ("model.keras", "metrics.json")


def text_case(tmp_path, name, content, extension=".csv", mode="w"):
    """Writes a data file and a tiny text config training on it; returns the train arguments."""
    data = tmp_path / f"{name}{extension}"
    if mode == "wb":
        data.write_bytes(content)
    else:
        data.write_text(content, encoding="utf-8")
    config = write_text_config(tmp_path / "config.yaml", data)
    return ["train", f"--config={config}", f"--model_dir={tmp_path / 'run'}"], str(data)


GOOD_CSV = "text,label\n" + "".join(f"{t},{l}\n" for t, l in good_text_rows())
GOOD_JSONL = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in good_text_rows())

# name -> (file name, content, extension, expected substrings of the error line)
DATA_CASES = {
    "csv_ragged_row": ("ragged", GOOD_CSV + "多余,pos,extra\n", ".csv", [":50", "3 fields", "allowed: 2 fields"]),
    "csv_bad_quotes": ("quotes", GOOD_CSV + '"好"坏,pos\n', ".csv", [":50", "unparsable row", "allowed:"]),
    "csv_missing_label": ("nolabel", GOOD_CSV + "没有标签,\n", ".csv", [":50", "'label'", "non-empty label"]),
    "csv_empty_text": ("notext", GOOD_CSV + ",pos\n", ".csv", [":50", "'text'", "non-empty text"]),
    "csv_missing_column": ("nocolumn", "body,label\n好,pos\n", ".csv", [":1", "'text'", "not in header"]),
    "csv_header_only": ("empty", "text,label\n", ".csv", ["dataset is empty", "at least one valid record"]),
    "csv_empty_file": ("emptyfile", "", ".csv", ["dataset is empty"]),
    "jsonl_bad_json": ("badjson", GOOD_JSONL + '{"text": "好", "label": \n', ".jsonl", [":49"]),
    "jsonl_not_object": ("array", GOOD_JSONL + '["好", "pos"]\n', ".jsonl", [":49"]),
    "jsonl_missing_label": ("nolabel", GOOD_JSONL + '{"text": "好"}\n', ".jsonl", [":49", "'label'"]),
    "unknown_extension": ("data", GOOD_CSV, ".xlsx", ["'.xlsx'", ".csv"]),
    "csv_one_label": ("onelabel", "text,label\n" + "".join(f"好{i},pos\n" for i in range(30)), ".csv",
                      ["every record has the label 'pos'", "allowed: at least 2 labels"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_malformed_data_file(binaries, tmp_path, case):
    name, content, extension, expected = DATA_CASES[case]
    args, data = text_case(tmp_path, name, content, extension)
    assert_one_line_error(binaries.run(*args), [os.path.basename(data)] + expected)
    assert_nothing_left(tmp_path / "run")


def test_non_utf8_bytes_name_the_line(binaries, tmp_path):
    args, data = text_case(tmp_path, "latin1", GOOD_CSV.encode() + "café,pos\n".encode("latin-1"), mode="wb")
    assert_one_line_error(binaries.run(*args), ["latin1.csv:50", "not UTF-8"])
    assert_nothing_left(tmp_path / "run")


def test_unknown_validation_label_names_the_allowed_labels(binaries, tmp_path):
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    validation = write_text_csv(tmp_path / "validation.csv", [("好看", "pos"), ("一般", "neutral")])
    result = binaries.run(*args, f"--override=data.validation={validation}")
    assert_one_line_error(result, ["validation.csv:3", "'neutral'", "'neg', 'pos'"])
    assert_nothing_left(tmp_path / "run")


def test_bom_and_crlf_are_accepted(binaries, tmp_path):
    data = write_text_csv(tmp_path / "bom_crlf.csv", good_text_rows(), newline="\r\n", encoding="utf-8-sig")
    assert open(data, "rb").read(3) == b"\xef\xbb\xbf"
    config = write_text_config(tmp_path / "config.yaml", data)
    result = binaries.run("train", f"--config={config}", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result
    from tfmodels.data import load_label_names
    # no "\r" or BOM glued to the labels or the header
    assert load_label_names(str(tmp_path / "run" / "labels.json")) == ["neg", "pos"]
    assert os.path.isfile(tmp_path / "run" / "model.keras")


def test_vocab_without_reserved_tokens(binaries, tmp_path):
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("好\n看\n的\n", encoding="utf-8")
    result = binaries.run(*args, f"--override=data.vocab_path={vocab}")
    assert_one_line_error(result, ["vocab.txt", "[PAD]", "[MASK]", "required"])
    assert_nothing_left(tmp_path / "run")


def test_sequence_length_above_encoder_maximum(binaries, tmp_path, tiny_encoder_dir):
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    args[0] = "finetune"
    result = binaries.run(*args, f"--override=finetune.encoder={tiny_encoder_dir}", "--override=model.kind=bert",
                          "--override=data.sequence_length=64")
    assert_one_line_error(result, ["data.sequence_length=64", "finetune.encoder=", "1..32"])
    assert_nothing_left(tmp_path / "run")


def test_a_pretraining_run_directory_as_the_encoder_names_its_encoder_directory(binaries, tmp_path):
    (tmp_path / "pretraining_run" / "encoder").mkdir(parents=True)
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    args[0] = "finetune"
    result = binaries.run(*args, f"--override=finetune.encoder={tmp_path / 'pretraining_run'}",
                          "--override=model.kind=bert")
    assert_one_line_error(result, ["finetune.encoder=", "no pretrained encoder found",
                                   f"--override=finetune.encoder={tmp_path / 'pretraining_run' / 'encoder'}"])
    assert_nothing_left(tmp_path / "run")


def test_top_k_above_the_encoders_layers(binaries, tmp_path, tiny_encoder_dir):
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    args[0] = "finetune"
    result = binaries.run(*args, f"--override=finetune.encoder={tiny_encoder_dir}", "--override=model.kind=bert",
                          "--override=finetune.mode=top_k", "--override=finetune.top_k=3")
    assert_one_line_error(result, ["finetune.top_k=3", "2 layers", "allowed: 0..2"])
    assert_nothing_left(tmp_path / "run")


def test_an_encoder_without_its_vocabulary(binaries, tmp_path, tiny_encoder_dir):
    import shutil
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, encoder)
    for vocabulary in ("vocab.txt", "assets/tokenizer/vocabulary.txt"):  # its own and the keras-hub preset's
        os.remove(encoder / vocabulary)
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    args[0] = "finetune"
    result = binaries.run(*args, f"--override=finetune.encoder={encoder}", "--override=model.kind=bert")
    assert_one_line_error(result, [f"finetune.encoder='{encoder}' holds no vocab.txt", "allowed:"])
    assert_nothing_left(tmp_path / "run")


def test_sequence_length_above_model_maximum_when_training(binaries, tmp_path):
    args, _ = text_case(tmp_path, "train", GOOD_CSV)
    result = binaries.run(*args, "--override=model.kind=bert", "--override=model.variant=tiny",
                          "--override=model.max_sequence_length=8", "--override=data.sequence_length=16")
    assert_one_line_error(result, ["data.sequence_length", "16", "model.max_sequence_length", "8"])
    assert_nothing_left(tmp_path / "run")


def test_resume_with_a_head_that_does_not_match_num_classes(binaries, tmp_path, mlp_model_dir):
    """A model dir trained on 10 classes, re-run on 3-class data: refuse, name the changed key; and
    without its config.yaml (nothing to compare), name the checkpoint and the shapes."""
    import shutil
    run_dir = tmp_path / "run"
    shutil.copytree(mlp_model_dir, run_dir)
    os.remove(run_dir / "model.keras")
    os.remove(run_dir / "metrics.json")
    data = write_digits_csv(tmp_path / "three.csv", num_classes=3)
    args = ("train", "--config=configs/mlp_digits.yaml", f"--model_dir={run_dir}", f"--override=data.train={data}",
            "--override=trainer.epochs=3", "--override=trainer.best_metric=null")
    result = binaries.run(*args)
    assert_one_line_error(result, ["holds a run trained with a different config",
                                   f"data.train 'builtin:digits' → '{data}'"])
    assert_no_trained_outputs(run_dir)
    os.remove(run_dir / "config.yaml")
    result = binaries.run(*args)
    assert_one_line_error(result, ["ckpt-", "logits"])
    assert_no_trained_outputs(run_dir)
    assert not os.path.exists(run_dir / "config.yaml"), "the failed start's config.yaml is removed again"


def test_finetune_num_classes_below_the_labels(binaries, tmp_path, mlp_model_dir):
    result = binaries.run("finetune", "--config=configs/mlp_digits.yaml", f"--model_dir={tmp_path / 'run'}",
                          f"--override=finetune.encoder={mlp_model_dir}", "--override=finetune.num_classes=3",
                          "--override=trainer.epochs=1")
    assert_one_line_error(result, ["finetune.num_classes=3", "10"])
    assert_nothing_left(tmp_path / "run")


CONFIG_CASES = {
    "unknown_key_in_file": ("trainer:\n  epochz: 2\n", [], ["bad.yaml:3", "epochz", "epochs"]),
    "wrong_type_in_file": ("trainer:\n  epochs: two\n", [], ["bad.yaml:3", "trainer.epochs", "int"]),
    "bad_choice_in_file": ("model:\n  kind: cnn\n", [], ["bad.yaml:3", "cnn", "mlp, bert, lstm"]),
    "unknown_override": ("", ["--override=trainer.lr=1"], ["trainer.lr", "learning_rate"]),
    "override_wrong_type": ("", ["--override=data.batch_size=big"], ["data.batch_size", "big", "int"]),
    "override_without_equals": ("", ["--override=trainer.epochs"], ["trainer.epochs", "="]),
    "python_object_tag": ("name: !!python/object/apply:os.system ['touch pwned']\n", [], ["bad.yaml:2", "python/object"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors(binaries, tmp_path, case):
    yaml_text, extra, expected = CONFIG_CASES[case]
    config = tmp_path / "bad.yaml"
    config.write_text("base: [" + os.path.abspath("configs/mlp_digits.yaml") + "]\n" + yaml_text)
    result = binaries.run("train", f"--config={config}", f"--model_dir={tmp_path / 'run'}", *extra)
    assert_one_line_error(result, expected)
    assert not (tmp_path / "run").exists(), "nothing is written before the config is valid"
    assert not os.path.exists("pwned")


MISSING_PATH_CASES = {
    "config_file": ("train", ["--config=no/such.yaml", "--model_dir={tmp}/run"], ["no/such.yaml"]),
    "train_file": ("train", ["--config=configs/mlp_digits.yaml", "--model_dir={tmp}/run",
                             "--override=data.train={tmp}/missing.csv"], ["missing.csv", "does not exist"]),
    "finetune_encoder": ("finetune", ["--config=configs/mlp_digits.yaml", "--model_dir={tmp}/run",
                                      "--override=finetune.encoder={tmp}/nothing"], ["nothing"]),
    "evaluate_model_dir": ("evaluate", ["--model_dir={tmp}/nothing"], ["nothing", "config.yaml"]),
    "export_model_dir": ("export", ["--model_dir={tmp}/nothing", "--export_base={tmp}/exports"],
                         ["nothing", "config.yaml"]),
    "predict_model": ("predict", ["--model={tmp}/nothing", "--text=好"], ["nothing"]),
    "no_model_dir_flag": ("train", ["--config=configs/mlp_digits.yaml"], ["model_dir"]),
}


@pytest.mark.parametrize("case", sorted(MISSING_PATH_CASES))
def test_missing_paths(binaries, tmp_path, case):
    binary, args, expected = MISSING_PATH_CASES[case]
    result = binaries.run(binary, *[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, expected)
    assert_nothing_left(tmp_path / "run")
    assert not (tmp_path / "exports").exists() or not os.listdir(tmp_path / "exports")


def test_bad_flag_value_lists_the_allowed_values(binaries, tmp_path):
    result = binaries.run("train", "--config=configs/mlp_digits.yaml", f"--model_dir={tmp_path}",
                          "--precision=fp8")
    assert_one_line_error(result, ["--precision=fp8", "mixed_bfloat16"])


def test_unknown_flag_is_one_line(binaries, tmp_path):
    result = binaries.run("train", "--config=configs/mlp_digits.yaml", f"--model_dir={tmp_path / 'run'}",
                          "--epochs=3")
    assert_one_line_error(result, ["epochs"])
    assert_nothing_left(tmp_path / "run")


def test_verbose_shows_the_traceback(binaries, tmp_path):
    result = binaries.run("train", "--config=no/such.yaml", f"--model_dir={tmp_path}", "--verbose")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_corrupted_checkpoint_is_named(binaries, tmp_path, mlp_model_dir):
    import shutil
    run_dir = tmp_path / "run"
    shutil.copytree(mlp_model_dir, run_dir)
    for name in ("model.keras", "metrics.json"):
        os.remove(run_dir / name)
    latest = max(n for n in os.listdir(run_dir) if n.endswith(".data-00000-of-00001"))
    with open(run_dir / latest, "r+b") as f:
        f.truncate(100)
    result = binaries.run("train", "--config=configs/mlp_digits.yaml", f"--model_dir={run_dir}",
                          "--override=trainer.epochs=3", "--override=trainer.best_metric=null")
    assert_one_line_error(result, [latest.split(".")[0], "corrupt"])
    assert_no_trained_outputs(run_dir)


def test_injected_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(binaries, tmp_path):
    """A huge learning rate drives the loss to inf/NaN within a few steps."""
    import tensorflow as tf
    from tfmodels.training import checkpointing as trainer_lib
    run_dir = tmp_path / "run"
    result = binaries.run("train", "--config=configs/mlp_digits.yaml", f"--model_dir={run_dir}",
                          "--override=trainer.learning_rate=1e30", "--override=trainer.checkpoint_every_steps=1",
                          "--override=trainer.epochs=2")
    assert_one_line_error(result, ["loss is", "at step", "last good checkpoint"])
    line = result.error_lines[0]
    bad_step = int(line.split("at step ")[1].split(";")[0])
    last_good = trainer_lib.latest_checkpoint(str(run_dir))
    assert last_good.endswith(f"ckpt-{bad_step - 1}"), (line, last_good)
    assert last_good in line
    reader = tf.train.load_checkpoint(last_good)
    assert int(reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")) == bad_step - 1
    assert_no_trained_outputs(run_dir)


def test_export_onto_an_existing_version_never_overwrites(binaries, tmp_path, mlp_model_dir):
    exports = tmp_path / "exports"
    args = ["export", f"--model_dir={mlp_model_dir}", f"--export_base={exports}", "--noverify"]
    first = binaries.run(*args)
    assert first.returncode == 0, first
    version_one = exports / "digits" / "1"
    before = {p: os.path.getmtime(os.path.join(r, p)) for r, _, fs in os.walk(version_one) for p in fs}
    second = binaries.run(*args)
    assert second.returncode == 0, second
    assert sorted(os.listdir(exports / "digits")) == ["1", "2"]
    after = {p: os.path.getmtime(os.path.join(r, p)) for r, _, fs in os.walk(version_one) for p in fs}
    assert before == after


# ---------------------------------------------------------------------------------------------


def assert_one_line_error(result, expected):
    """Exit 2, exactly one `error:` line (the last stderr line) holding `expected`, no traceback."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result
    assert len(result.error_lines) == 1, result
    line = result.error_lines[0]
    assert result.stderr.rstrip().splitlines()[-1] == line, result
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"


def assert_nothing_left(run_dir):
    """A run that failed before training leaves no directory (failed_starts)."""
    assert not os.path.exists(run_dir), f"{run_dir} left behind: {sorted(os.listdir(run_dir))}"


def assert_no_trained_outputs(run_dir):
    for name in TRAINED_OUTPUTS:
        assert not os.path.exists(os.path.join(run_dir, name)), f"partial output {name} written"
