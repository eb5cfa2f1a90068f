"""Every binary that trains, under the default, one-device and mirrored strategies and in each
precision, through the task functions the binaries call (tests/strategy_matrix.py lists the cells);
then evaluate, export (verified in a fresh process) and predict on what each cell trained."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import strategy_matrix as matrix
from tfmodels import data as tfm_data
from tfmodels import export as tfm_export
from tfmodels import models as tfm_models
from tfmodels.config import load_config
from tfmodels.tasks import common, evaluate, export, finetune, pipeline, pretrain, train

TASKS = {"train": train.run, "pretrain": pretrain.run, "finetune": finetune.run, "pipeline": pipeline.run}
TEXTS = ["这是一部非常好的电影！", "质量太差，用了两天就坏了。", ""]


@pytest.fixture(autouse=True)
def _float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("cell", matrix.pytest_params(matrix.in_process_cells()))
def test_cell_trains_and_its_model_evaluates_exports_and_predicts(cell, request, tmp_path):
    name, strategy, precision = cell
    encoder_dir = matrix.encoder_for(name, request)
    model_dir = str(tmp_path / "run")
    config = load_config(matrix.config_path(name), matrix.overrides(name, strategy, precision, encoder_dir),
                         model_dir=model_dir)
    result = TASKS[matrix.BINARIES[name][0]](config)
    saved = common.load_run_config(model_dir)
    assert (saved.strategy, saved.precision) == (strategy, precision)
    if matrix.BINARIES[name][0] == "pretrain":
        check_pretrained(result, model_dir)
    elif name == "pipeline":
        check_pipeline(result, model_dir)
    else:
        check_classifier(result, model_dir, precision, tmp_path)


def _training_losses(result):
    history = result["history"]
    return (history["main"] if "main" in history else history)["loss"]


def check_classifier(result, model_dir, precision, tmp_path):
    losses = _training_losses(result)
    # Modes that train little (gradual unfreezing starts with the head alone) may spend the three
    # tiny epochs learning the class prior: then the loss ends below ln 2, the loss of a classifier
    # that has learned nothing (uniform probabilities over the two classes).
    assert losses[-1] < losses[0] or losses[-1] < np.log(2) - 0.01, losses
    with open(os.path.join(model_dir, common.METRICS_FILE)) as f:
        saved = json.load(f)
    assert saved["test"]["accuracy"] == pytest.approx(result["metrics"]["test"]["accuracy"])
    config = evaluate.load_run_config(model_dir)
    metrics = evaluate.run(config, split="test")
    # Evaluate runs on the default strategy; low precision may flip an example near the boundary.
    tolerance = 1e-6 if precision == "float32" else 0.02
    assert metrics["accuracy"] == pytest.approx(saved["test"]["accuracy"], abs=tolerance)
    export_config = export.load_run_config(model_dir, overrides=[f"export.export_base={tmp_path / 'exports'}"])
    version_dir = export.run(export_config)  # verified against the model in a fresh process
    servable = tfm_export.load_servable(version_dir)
    inputs = TEXTS if config.model.kind != "mlp" else [" ".join(["8"] * 64), " ".join(["0"] * 64)]
    predictions = tfm_export.predict_texts(servable, inputs)
    names = tfm_data.load_label_names(os.path.join(model_dir, common.LABELS_FILE))
    assert [p["input"] for p in predictions] == inputs
    for p in predictions:
        assert p["label"] in names
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def check_pretrained(result, model_dir):
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0], losses
    assert np.isfinite(result["metrics"]["loss"])
    loaded = tfm_models.load_encoder(result["encoder_dir"])
    assert loaded.encoder.vocabulary_size <= 300
    assert os.path.isfile(os.path.join(model_dir, common.METRICS_FILE))


def check_pipeline(result, model_dir):
    """The pipeline's whole output: results files and picture, every stage, the export, predictions
    through it, the out-of-corpus check and the predict binary on the export."""
    for name in ("results.md", "results.json", "vocab.txt", "validation_curves.png"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    with open(os.path.join(model_dir, "results.json"), encoding="utf-8") as f:
        saved = json.load(f)
    for key in ("pretrained_finetuned", "random_init", "tfidf_logreg"):
        assert 0.0 < saved["test"][key]["accuracy"] <= 1.0
    for key in ("pretrained_finetuned", "random_init"):  # the picture's validation curves
        assert saved["seeds"][0]["curves"][key], key
    assert set(saved["stage_seconds"]) == {"vocabulary", "pretrain", "finetune", "random_init", "evaluate",
                                           "export"}
    assert saved["export"].startswith(model_dir) and os.path.isfile(os.path.join(saved["export"], "saved_model.pb"))
    assert len(saved["predictions"]) == len(pipeline.EXAMPLE_TEXTS)
    predictions = {p["input"]: p for p in result["predictions"]}
    for text in pipeline.EXAMPLE_TEXTS[:2]:
        probabilities = predictions[text]["probabilities"]
        assert set(probabilities) == {"negative", "positive"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert result["test"] == saved["test"]
    check = saved["out_of_corpus_check"]
    assert check["examples"] == len(check["predictions"]) == 24
    assert check["exported_accuracy"] == pytest.approx(
        np.mean([r["exported"] == r["label"] for r in check["predictions"]]))
    with open(os.path.join(model_dir, "pretrain", common.METRICS_FILE), encoding="utf-8") as f:
        heldout = json.load(f)["heldout"]  # after the in-domain phase's bucketed, trimmed batches
    assert np.isfinite(heldout["loss"]) and 0.0 <= heldout["accuracy"] <= 1.0
    check_predict_binary(result["export"])


def check_predict_binary(export_dir):
    """The predict binary answers raw Chinese text through the export, as JSON lines."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=matrix.REPO)
    completed = subprocess.run(
        [sys.executable, "-m", "trainers.predict", f"--model={export_dir}", "--text=这是一部非常好的电影！"],
        cwd=matrix.REPO, env=env, capture_output=True, text=True, input="这部电影太差了，不值得一看。\n",
        timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = json.loads(completed.stdout.strip().splitlines()[-1])
    assert line["input"] == "这是一部非常好的电影！" and line["label"] in ("negative", "positive")
