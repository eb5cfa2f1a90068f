"""ELECTRA pretraining through the pretrain task: learning on real text, the saved encoder, strategies
and precisions, and exact resume. Each test runs whole pretraining tasks (a minute or more on two
busy cores), so all are slow; tests/training/test_electra_training.py covers the same paths fast."""
import json
import os

import keras
import keras_hub
import numpy as np
import pytest

from tests import strategy_matrix as matrix
from tfmodels import models as tfm_models
from tfmodels.config import load_config
from tfmodels.tasks import common, finetune, pretrain

ELECTRA_METRICS = ["discriminator_accuracy", "discriminator_auc", "discriminator_loss", "generator_accuracy",
                   "generator_loss", "loss", "replaced_fraction"]
# Enough text and steps for the discriminator to learn more than the share of replaced tokens:
# co-occurrence token vectors give it context statistics from the start, and 30% masking gives it
# more replaced tokens to learn from.
LEARNING = ["data.limit=3000", "data.vocab_size=600", "data.sequence_length=32", "data.pretrain_sequence_length=32",
            "data.mask_rate=0.3", "data.max_predictions=10", "pretrain.batch_size=32", "pretrain.steps=200",
            "pretrain.steps_per_epoch=50", "pretrain.checkpoint_every_steps=1000", "pretrain.log_every_steps=100",
            "model.pretrain_embedding_init=cooccurrence"]


@pytest.fixture(autouse=True)
def _float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def electra_config(model_dir, extra=(), strategy="default", precision="float32"):
    overrides = matrix.overrides("pretrain_electra", strategy, precision) + list(extra)
    return load_config(matrix.config_path("pretrain_electra"), overrides, model_dir=str(model_dir))


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("electra")
    return pretrain.run(electra_config(model_dir, LEARNING)), model_dir


@pytest.mark.slow
def test_training_lowers_the_loss_and_the_discriminator_beats_the_constant_prediction(learned_run):
    result, model_dir = learned_run
    history = result["history"]
    assert history["loss"][-1] < history["loss"][0], history["loss"]
    assert history["generator_loss"][-1] < history["generator_loss"][0], history["generator_loss"]
    heldout = result["metrics"]
    assert sorted(heldout) == ELECTRA_METRICS
    # The best prediction that ignores the tokens: "replaced" with probability replaced_fraction
    # everywhere, whose cross-entropy is the binary entropy of that fraction. Beating it means the
    # discriminator tells replaced tokens from original ones. (At this size and number of steps its
    # thresholded accuracy is still that of predicting "original" everywhere: it never gets to
    # p > 0.5 on a replaced token.)
    fraction = heldout["replaced_fraction"]
    constant_loss = -(fraction * np.log(fraction) + (1 - fraction) * np.log(1 - fraction))
    assert heldout["discriminator_loss"] < constant_loss - 0.005, (heldout, constant_loss)
    assert heldout["discriminator_accuracy"] >= 1.0 - fraction - 0.01, heldout
    assert heldout["discriminator_auc"] > 0.55, heldout  # it ranks replaced tokens above original ones
    with open(os.path.join(model_dir, common.METRICS_FILE)) as f:
        assert json.load(f)["heldout"] == pytest.approx(heldout)


@pytest.mark.slow
def test_the_saved_encoder_is_the_discriminator_and_fine_tunes(learned_run, tmp_path):
    result, _ = learned_run
    encoder_dir = result["encoder_dir"]
    backbone = keras_hub.models.BertBackbone.from_preset(encoder_dir)
    loaded = tfm_models.load_encoder(encoder_dir).encoder
    for a, b in zip(backbone.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    mlm_dir = tfm_models.save_encoder(loaded, os.path.join(encoder_dir, "vocab.txt"), tmp_path / "as_mlm")
    assert sorted(os.listdir(mlm_dir)) == sorted(os.listdir(encoder_dir))  # the masked-LM encoder's format
    overrides = matrix.overrides("finetune_full", "default", "float32", encoder_dir) + [
        "trainer.epochs=1", "data.sequence_length=32", "model.max_sequence_length=32"]
    config = load_config(matrix.config_path("finetune_full"), overrides, model_dir=str(tmp_path / "finetune"))
    tuned = finetune.run(config)
    assert 0.0 <= tuned["metrics"]["test"]["accuracy"] <= 1.0


SHORT = ["pretrain.steps=6", "pretrain.steps_per_epoch=3", "pretrain.checkpoint_every_steps=3"]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mirrored_low_precision_runs(precision, tmp_path):
    result = pretrain.run(electra_config(tmp_path, SHORT, strategy="mirrored", precision=precision))
    assert result["history"]["loss"][-1] < result["history"]["loss"][0], result["history"]["loss"]
    assert sorted(result["metrics"]) == ELECTRA_METRICS
    assert all(np.isfinite(v) for v in result["metrics"].values())
    assert common.load_run_config(str(tmp_path)).strategy == "mirrored"


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    """Four steps in one go equal two steps, a new model, optimizer and data, and a resume to four:
    weights, optimizer state, data position and the sampling seed all come back from the checkpoint."""
    fixed = ["deterministic=true", "pretrain.decay=constant", "pretrain.warmup_steps=0",
             "pretrain.warmup_fraction=0", "pretrain.steps_per_epoch=2", "pretrain.checkpoint_every_steps=2"]
    uninterrupted = pretrain.run(electra_config(tmp_path / "a", fixed + ["pretrain.steps=4"]))
    pretrain.run(electra_config(tmp_path / "b", fixed + ["pretrain.steps=2"]))
    resumed = pretrain.run(electra_config(tmp_path / "b", fixed + ["pretrain.steps=4"]))
    a = keras_hub.models.BertBackbone.from_preset(uninterrupted["encoder_dir"])
    b = keras_hub.models.BertBackbone.from_preset(resumed["encoder_dir"])
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
