"""`precision: auto` in a run: recurrent models train in float32 whatever the hardware."""
import os

import keras
import pytest

from tfmodels.config import load_config
from tfmodels.tasks import common
from tfmodels.training import precision

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_auto_precision_of_a_run_follows_the_model_kind(tmp_path):
    lstm = load_config(os.path.join(CONFIGS, "lstm_sentiment_zh.yaml"), model_dir=str(tmp_path / "lstm"))
    assert lstm.precision == "auto"
    assert common.start_run(lstm).precision == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    bert = load_config(os.path.join(CONFIGS, "bert_sentiment_zh.yaml"), ["precision=auto"],
                       model_dir=str(tmp_path / "bert"))
    assert common.start_run(bert).precision == precision.resolve_precision("auto")


def test_explicit_mixed_bfloat16_still_applies_to_an_lstm(tmp_path):
    lstm = load_config(os.path.join(CONFIGS, "lstm_sentiment_zh.yaml"), precision="mixed_bfloat16",
                       model_dir=str(tmp_path))
    assert common.start_run(lstm).precision == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
