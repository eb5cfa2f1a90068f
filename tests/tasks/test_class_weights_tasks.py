"""Class weights through the train task: weighted training batches, metrics.json, evaluate output."""
import json
import os

import numpy as np
import pytest

from tfmodels import data as tfm_data
from tfmodels.config import load_config
from tfmodels.tasks import evaluate, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MLP_CONFIG = os.path.join(REPO, "configs", "mlp_digits.yaml")
FAVOURED = "8"


def _digits_run(model_dir, overrides=()):
    config = load_config(MLP_CONFIG, ["trainer.epochs=2", *overrides], model_dir=str(model_dir))
    return config, train.run(config)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    plain = _digits_run(tmp_path_factory.mktemp("plain"))
    weighted = _digits_run(tmp_path_factory.mktemp("weighted"),
                           [f"data.class_weights={{{FAVOURED}: 30.0}}"])
    return {"plain": plain, "weighted": weighted}


def test_feature_training_batches_carry_the_class_weights(runs):
    config, _ = runs["weighted"]
    splits = train.load_feature_splits(config)
    normalizer = tfm_data.Normalizer.fit(splits.train.features)
    train_data, evaluation = train.feature_datasets(config, splits, normalizer)
    features, labels, weights = next(iter(train_data))
    names = np.array(splits.label_names)[labels.numpy()]
    np.testing.assert_allclose(weights.numpy(), np.where(names == FAVOURED, 30.0, 1.0))
    assert all(len(next(iter(dataset))) == 2 for dataset in evaluation.values())


def test_metrics_json_reports_the_class_weights(runs):
    for name, (config, result) in runs.items():
        with open(os.path.join(result["model_dir"], "metrics.json")) as f:
            saved = json.load(f)
        if name == "plain":
            assert "class_weights" not in saved
        else:
            assert saved["class_weights"][FAVOURED] == 30.0
            assert {w for label, w in saved["class_weights"].items() if label != FAVOURED} == {1.0}


def test_the_loss_honours_the_weights_and_evaluate_reports_per_class_metrics(runs):
    per_class = {}
    for name, (config, result) in runs.items():
        metrics = evaluate.run(evaluate.load_run_config(result["model_dir"]), split="test")
        per_class[name] = metrics["per_class"]
        confusion = np.asarray(metrics["confusion_matrix"])
        names = list(metrics["per_class"])
        assert [metrics["per_class"][n]["support"] for n in names] == confusion.sum(axis=1).tolist()
        with open(os.path.join(result["model_dir"], "metrics_test.json")) as f:
            assert json.load(f)["per_class"] == metrics["per_class"]
    # Weighting class 8 thirty-fold makes the model predict it more readily: its recall rises and
    # its precision falls (test split, same seed and data order).
    assert per_class["weighted"][FAVOURED]["recall"] >= per_class["plain"][FAVOURED]["recall"]
    assert per_class["weighted"][FAVOURED]["precision"] < per_class["plain"][FAVOURED]["precision"]
