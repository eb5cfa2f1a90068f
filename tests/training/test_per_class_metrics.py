"""Per-class precision, recall, F1 and support from a confusion matrix."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from tfmodels.training.metrics import metrics_from_confusion_matrix, per_class_metrics


def test_per_class_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    predictions[predictions == 3] = 2  # class 3 is never predicted: precision 0
    confusion = confusion_matrix(labels, predictions, labels=range(4))
    names = ["a", "b", "c", "d"]
    got = per_class_metrics(confusion, names)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=range(4), zero_division=0)
    assert list(got) == names
    for i, name in enumerate(names):
        assert got[name]["precision"] == pytest.approx(precision[i])
        assert got[name]["recall"] == pytest.approx(recall[i])
        assert got[name]["f1"] == pytest.approx(f1[i])
        assert got[name]["support"] == support[i]
    macro = metrics_from_confusion_matrix(confusion)
    assert macro["macro_f1"] == pytest.approx(np.mean(f1))


def test_per_class_metrics_default_names_and_name_count_check():
    assert list(per_class_metrics(np.eye(3))) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="class_names has 2 names for a 3-class"):
        per_class_metrics(np.eye(3), ["a", "b"])
