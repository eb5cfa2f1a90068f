"""End-to-end tests of the task functions behind the binaries, on tiny configs and real data."""

import json
import os

import numpy as np
import pytest

from tfmodels.config import ConfigError, load_config
from tfmodels.tasks import common, evaluate, export, finetune, pipeline, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_file(name):
    return os.path.join(REPO, "configs", name)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("mlp"))
    config = load_config(config_file("mlp_digits.yaml"), ["trainer.epochs=8"], model_dir=model_dir)
    return train.run(config)


def test_mlp_trains_to_high_accuracy_and_saves_artifacts(mlp_run):
    model_dir = mlp_run["model_dir"]
    for name in ("config.yaml", "model.keras", "labels.json", "normalizer.json", "metrics.json"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert mlp_run["metrics"]["test"]["accuracy"] > 0.9
    with open(os.path.join(model_dir, "metrics.json")) as f:
        assert json.load(f)["test"]["accuracy"] == pytest.approx(mlp_run["metrics"]["test"]["accuracy"])


def test_mlp_frozen_trunk_finetune_keeps_trunk_weights(mlp_run, tmp_path):
    config = load_config(config_file("mlp_digits.yaml"),
                         ["trainer.epochs=2", f"finetune.encoder={mlp_run['model_dir']}", "finetune.mode=frozen"],
                         model_dir=str(tmp_path))
    result = finetune.run(config)
    base = common.load_model(os.path.join(mlp_run["model_dir"], "model.keras"))
    tuned = common.load_model(os.path.join(tmp_path, "model.keras"))
    trunk = [w for w in base.weights if "head" not in w.path and "logits" not in w.path]
    assert trunk
    tuned_by_path = {w.path: w for w in tuned.weights}
    for w in trunk:
        np.testing.assert_array_equal(w.numpy(), tuned_by_path[w.path].numpy())
    assert result["param_counts"].trainable < result["param_counts"].total


def test_evaluate_and_export_mlp(mlp_run, tmp_path):
    config = evaluate.load_run_config(mlp_run["model_dir"])
    metrics = evaluate.run(config, split="test")
    assert metrics["accuracy"] == pytest.approx(mlp_run["metrics"]["test"]["accuracy"], abs=1e-6)
    export_config = export.load_run_config(mlp_run["model_dir"], overrides=[f"export.export_base={tmp_path}"])
    version_dir = export.run(export_config)
    assert version_dir.endswith(os.path.join("digits", "1"))


def test_missing_model_dir_is_a_config_error():
    with pytest.raises(ConfigError, match="model_dir is not set"):
        train.run(load_config(config_file("mlp_digits.yaml")))


TINY_PIPELINE = [
    "model.variant=tiny", "model.max_sequence_length=64", "data.sequence_length=32", "data.limit=256",
    "data.vocab_size=600", "data.batch_size=16", "pretrain.steps=4", "pretrain.log_every_steps=2",
    "trainer.epochs=1", "export.verify_examples=4", "pretrain.in_domain_steps=4",
]


def test_pipeline_end_to_end_on_a_tiny_config(tmp_path):
    config = load_config(config_file("demo_zh_sentiment.yaml"), TINY_PIPELINE, model_dir=str(tmp_path))
    results = pipeline.run(config)
    for name in ("results.md", "results.json", "vocab.txt", "validation_curves.png"):
        assert os.path.isfile(tmp_path / name)
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)
    for key in ("pretrained_finetuned", "random_init", "tfidf_logreg"):
        assert 0.0 <= saved["test"][key]["accuracy"] <= 1.0
    for key in ("pretrained_finetuned", "random_init"):  # the picture's validation curves
        assert saved["seeds"][0]["curves"][key], key
    assert set(saved["stage_seconds"]) == {"vocabulary", "pretrain", "finetune", "random_init", "evaluate",
                                           "export"}
    predictions = {p["input"]: p for p in results["predictions"]}
    for text in pipeline.EXAMPLE_TEXTS[:2]:
        probabilities = predictions[text]["probabilities"]
        assert set(probabilities) == {"negative", "positive"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert os.path.isdir(results["export"])
    check = saved["out_of_corpus_check"]
    assert check["examples"] == len(check["predictions"]) == 24
    assert check["exported_accuracy"] == pytest.approx(
        np.mean([r["exported"] == r["label"] for r in check["predictions"]]))
    check_predict_binary(results["export"])


def check_predict_binary(export_dir):
    """The predict binary answers raw Chinese text through the export, as JSON lines."""
    import subprocess
    import sys
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-m", "trainers.predict", f"--model={export_dir}", "--text=这是一部非常好的电影！"],
        cwd=REPO, env=env, capture_output=True, text=True, input="这部电影太差了，不值得一看。\n", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["input"] == "这是一部非常好的电影！" and line["label"] in ("negative", "positive")


def test_export_verification_tolerance_comes_from_the_config(mlp_run, tmp_path):
    from tfmodels.export import METADATA_FILENAME
    config = export.load_run_config(mlp_run["model_dir"], overrides=[f"export.export_base={tmp_path}",
                                                                     "export.verify_atol=0.003"])
    version_dir = export.run(config)
    with open(os.path.join(version_dir, "assets.extra", METADATA_FILENAME), encoding="utf-8") as f:
        verification = json.load(f)["verification"]
    assert verification["performed"] and verification["atol"] == 0.003
