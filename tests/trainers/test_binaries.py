"""The absl binaries as a user runs them: flags, exit codes, one-line errors, outputs."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = ["train", "pretrain", "finetune", "evaluate", "export", "predict", "pipeline"]


def run_binary(name, *args, stdin=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", f"trainers.{name}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, input=stdin, timeout=600)


@pytest.mark.parametrize("name", BINARIES)
def test_helpfull_documents_common_flags(name):
    result = run_binary(name, "--helpfull")
    assert result.returncode in (0, 1), result.stderr  # absl exits 1 after printing help
    for flag in ("--config", "--override", "--model_dir", "--strategy", "--precision", "--seed"):
        assert flag in result.stdout


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("mlp_bin")
    result = run_binary("train", "--config=configs/mlp_digits.yaml", f"--model_dir={model_dir}",
                        "--override=trainer.epochs=5")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def test_train_evaluate_export_predict_chain(mlp_dir, tmp_path):
    with open(mlp_dir / "metrics.json") as f:
        assert json.load(f)["test"]["accuracy"] > 0.85
    result = run_binary("evaluate", f"--model_dir={mlp_dir}", "--split=validation")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (mlp_dir / "metrics_validation.json").is_file()
    export_base = tmp_path / "exports"
    result = run_binary("export", f"--model_dir={mlp_dir}", f"--export_base={export_base}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (export_base / "digits" / "1" / "saved_model.pb").is_file()
    features = " ".join(["0.5"] * 64)  # numeric inputs are space- or comma-separated
    result = run_binary("predict", f"--model={export_base / 'digits'}", f"--text={features}")
    assert result.returncode == 0, result.stderr[-3000:]
    prediction = json.loads(result.stdout.strip().splitlines()[-1])
    assert prediction["label"] in [str(d) for d in range(10)]
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--config=configs/mlp_digits.yaml", "--model_dir=/tmp/x", "--override=trainer.learning_rat=1"],
     r"unknown key 'trainer.learning_rat'; did you mean 'trainer.learning_rate'"),
    (["--config=configs/mlp_digits.yaml", "--model_dir=/tmp/x", "--override=trainer.epochs=many"],
     "trainer.epochs must be int"),
    (["--config=configs/nope.yaml", "--model_dir=/tmp/x"], "configs/nope.yaml: config file not found"),
    (["--config=configs/mlp_digits.yaml"], "model_dir is not set"),
])
def test_bad_config_gives_one_line_error_and_exit_2(args, message):
    import re
    result = run_binary("train", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and re.search(message, error_lines[0]), result.stderr[-2000:]


# Runs a binary's entry point, then reports on stderr whether TensorFlow was imported by exit.
_REPORT_TENSORFLOW_AT_EXIT = """
import atexit, runpy, sys
atexit.register(lambda: print(f"tensorflow imported: {'tensorflow' in sys.modules}", file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


_TYPO = ["--config=configs/mlp_digits.yaml", "--model_dir={empty}/run", "--override=trainer.learning_rat=1"]


@pytest.mark.parametrize("name, args, message", [
    *[(name, _TYPO, "error: --override trainer.learning_rat: unknown key")
      for name in ("train", "pretrain", "finetune", "pipeline")],
    ("evaluate", ["--model_dir={empty}"], "error: {empty}: no config.yaml found"),
    ("export", ["--model_dir={empty}", "--export_base={empty}/exports"], "error: {empty}: no config.yaml found"),
])
def test_a_bad_config_fails_before_tensorflow_loads(name, args, message, tmp_path):
    args = [arg.format(empty=tmp_path) for arg in args]
    assert _last_error_line_without_tensorflow(name, args).startswith(message.format(empty=tmp_path))
    assert os.listdir(tmp_path) == []


def _last_error_line_without_tensorflow(name, args):
    """Runs binary `name` expecting exit status 2 before TensorFlow loads; returns its last stderr line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-c", _REPORT_TENSORFLOW_AT_EXIT, f"trainers.{name}", *args],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "tensorflow imported: False", result.stderr[-2000:]
    return lines[-2]


@pytest.mark.parametrize("name, recorded_kind, message", [
    ("train", "train", "holds a run trained with a different config (trainer.learning_rate 0.1 → 0.001)"),
    ("pipeline", "train", "holds a train run, and this command starts a pipeline run"),
])
def test_a_run_directory_that_cannot_resume_is_refused_before_tensorflow_loads(name, recorded_kind, message,
                                                                               tmp_path):
    from tfmodels.config import load_config, save_config
    from tfmodels.tasks import resume_check
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    save_config(load_config(os.path.join(REPO, "configs/mlp_digits.yaml"), ["trainer.learning_rate=0.1"],
                            model_dir=str(model_dir)), str(model_dir / "config.yaml"))
    resume_check.record_kind(str(model_dir), recorded_kind)
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    files = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    line = _last_error_line_without_tensorflow(name, ["--config=configs/mlp_digits.yaml", f"--model_dir={model_dir}"])
    assert line.startswith(f"error: {model_dir}: {message}"), line
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == files


def test_layer_decay_without_a_transformer_is_refused_before_tensorflow_loads(tmp_path):
    line = _last_error_line_without_tensorflow("train", [
        "--config=configs/lstm_sentiment_zh.yaml", f"--model_dir={tmp_path / 'run'}",
        "--override=trainer.layer_decay=0.8"])
    assert line.startswith("error: --override trainer.layer_decay: trainer.layer_decay=0.8 needs a transformer "
                           "encoder"), line
    assert os.listdir(tmp_path) == []


def test_bad_flag_value_is_rejected():
    result = run_binary("train", "--precision=fp8")
    assert result.returncode != 0
    assert "--precision" in result.stderr and "mixed_bfloat16" in result.stderr


def test_bad_pretraining_flag_of_the_pipeline_lists_the_allowed_values():
    result = run_binary("pipeline", "--config=configs/demo_zh_sentiment.yaml", "--model_dir=/tmp/x",
                        "--pretraining=twice")
    assert result.returncode != 0
    assert "--pretraining=twice: value should be one of <shared|per_seed>" in result.stderr, result.stderr[-2000:]


def test_rerunning_a_run_under_a_changed_config_is_refused_and_a_raised_total_trains_on(tmp_path):
    model_dir = tmp_path / "mlp"
    args = ["--config=configs/mlp_digits.yaml", f"--model_dir={model_dir}"]
    assert run_binary("train", *args, "--override=trainer.epochs=1").returncode == 0
    saved_config, files = (model_dir / "config.yaml").read_bytes(), sorted(os.listdir(model_dir))

    result = run_binary("train", *args, "--override=trainer.epochs=1", "--override=trainer.learning_rate=0.1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {model_dir}: holds a run trained with a different config (trainer.learning_rate 0.001 → 0.1); "
        f"resuming would mix the two settings or report that run under the new ones: use a new --model_dir, "
        f"or delete {model_dir} to start over")
    assert (model_dir / "config.yaml").read_bytes() == saved_config
    assert sorted(os.listdir(model_dir)) == files

    result = run_binary("train", *args, "--override=trainer.epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from {model_dir}/ckpt-" in result.stdout
    assert "epoch 2/2" in result.stdout


def test_pipeline_reuse_from_must_name_a_directory(tmp_path):
    result = run_binary("pipeline", "--config=configs/demo_zh_sentiment.yaml", f"--model_dir={tmp_path / 'run'}",
                        f"--reuse_from={tmp_path / 'nope'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: study.reuse_from='{tmp_path / 'nope'}' is not a directory; allowed: an earlier pipeline run's "
        f"directory")
    assert not os.path.exists(tmp_path / "run")
