"""Fine-tuning protocol options from the config: layer-wise learning-rate decay, evaluations every N
steps across the phases of frozen_then_full, and one-line errors for bad values."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels import training as tfm_training
from tfmodels.config import ConfigError, TrainerConfig, load_config
from tfmodels.tasks import common, finetune

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_file(name):
    return os.path.join(REPO, "configs", name)


def _tiny_bert_classifier(num_layers=3):
    encoder = tfm_models.build_bert_encoder("tiny", vocabulary_size=100, max_sequence_length=16,
                                            num_layers=num_layers)
    return tfm_models.build_bert_classifier(encoder, 2)


def _expected_factor(path, num_layers, decay, head_multiplier):
    """The rule of trainer.layer_decay, written out per variable path."""
    if path.startswith("logits/"):
        return head_multiplier
    if path.startswith("transformer_layer_"):
        i = int(path.split("/")[0].rsplit("_", 1)[1]) + 1  # 1 = bottom ... L = top
        return decay ** (num_layers + 1 - i)
    if path.split("/")[0] in ("token_embedding", "position_embedding", "segment_embedding",
                              "embeddings_layer_norm"):
        return decay ** (num_layers + 1)
    return 1.0  # the pooler


def test_layer_decay_scales_each_variables_update():
    num_layers, decay, head_multiplier, learning_rate = 3, 0.5, 4.0, 1e-3
    model = _tiny_bert_classifier(num_layers)
    tc = TrainerConfig(optimizer="adam", learning_rate=learning_rate, decay="constant", clipnorm=None,
                       layer_decay=decay, head_learning_rate_multiplier=head_multiplier)
    optimizer = common.make_optimizer(tc, 10, model=model)
    variables = model.trainable_variables
    optimizer.build(variables)
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=v.shape).astype("float32") for v in variables]
    before = [v.numpy().copy() for v in variables]
    optimizer.apply(gradients, variables)
    # Adam's first step moves every weight by learning_rate x factor x g / |g|.
    factors = {}
    for variable, old in zip(variables, before):
        factors[variable.path] = float(np.median(np.abs(variable.numpy() - old))) / learning_rate
    for path, factor in factors.items():
        assert factor == pytest.approx(_expected_factor(path, num_layers, decay, head_multiplier), rel=1e-3), path
    # Every group is present: head, pooler, layers 3, 2, 1 and the embeddings.
    assert {_expected_factor(p, num_layers, decay, head_multiplier) for p in factors} == {
        4.0, 1.0, 0.5, 0.25, 0.125, 0.0625}


def test_layer_decay_of_one_leaves_only_the_head_multiplier():
    model = _tiny_bert_classifier(2)
    optimizer = common.make_optimizer(TrainerConfig(head_learning_rate_multiplier=10.0), 10, model=model)
    assert optimizer.lr_multipliers == {common.HEAD_VARIABLES: 10.0}


@pytest.mark.parametrize("build", [
    lambda: tfm_models.build_lstm_classifier(100, 2, units=8),
    lambda: tfm_models.build_mlp((8,), [16], 3),
])
def test_layer_decay_on_a_model_without_layers_is_a_config_error(build):
    with pytest.raises(ConfigError, match=r"^trainer\.layer_decay=0\.8: model '\w+' has no transformer "
                                          r"encoder.*allowed for this model: 1\.0$"):
        common.make_optimizer(TrainerConfig(layer_decay=0.8), 10, model=build())


@pytest.mark.parametrize("override, message", [
    ("trainer.eval_every_steps=0", "trainer.eval_every_steps=0 is out of range; allowed: >= 1"),
    ("trainer.early_stopping_patience=0", "trainer.early_stopping_patience=0 is out of range; allowed: >= 1"),
    ("trainer.layer_decay=0", r"trainer.layer_decay=0.0 is out of range; allowed: in \(0, 1\]"),
    ("trainer.layer_decay=1.5", r"trainer.layer_decay=1.5 is out of range; allowed: in \(0, 1\]"),
    ("pretrain.layer_decay=0.8", r"pretrain.layer_decay=0.8 is out of range; allowed: 1.0 \(layer decay is a "
                                 r"fine-tuning option: trainer.layer_decay\)"),
    ("trainer.eval_every_steps=often", "trainer.eval_every_steps must be int | None, got 'often'"),
    ("trainer.length_sorted_parts=0", "trainer.length_sorted_parts=0 is out of range; allowed: >= 1"),
    ("pretrain.in_domain_length_sorted_parts=0",
     "pretrain.in_domain_length_sorted_parts=0 is out of range; allowed: >= 1"),
])
def test_bad_protocol_values_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError, match=f"^--override {override.split('=')[0]}: {message}$"):
        load_config(config_file("bert_finetune_sentiment_zh.yaml"), [override])


@pytest.mark.parametrize("config_name, kind", [("lstm_sentiment_zh.yaml", "lstm"), ("mlp_digits.yaml", "mlp")])
@pytest.mark.parametrize("key, value, off", [("layer_decay", "0.8", "1.0"), ("length_sorted_parts", "2", "1")])
def test_transformer_options_without_a_transformer_are_refused_when_the_config_loads(config_name, kind, key, value,
                                                                                      off):
    with pytest.raises(ConfigError, match=rf"^--override trainer.{key}: trainer.{key}={value} needs a "
                                          rf"transformer encoder \(model.kind: bert\); allowed with "
                                          rf"model.kind={kind}: {off}$"):
        load_config(config_file(config_name), [f"trainer.{key}={value}"])


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A randomly initialised tiny encoder saved like a pretrain run's encoder/ directory."""
    directory = tmp_path_factory.mktemp("encoder")
    splits = common.load_text_splits(load_config(config_file("bert_finetune_sentiment_zh.yaml"),
                                                 ["data.limit=400"]))
    vocab_path = str(directory / "build_vocab.txt")
    tokens = tfm_data.build_wordpiece_vocab(splits.train.texts, vocab_size=500, output_path=vocab_path)
    encoder = tfm_models.build_bert_encoder("tiny", vocabulary_size=len(tokens), max_sequence_length=32,
                                            num_layers=2)
    return tfm_models.save_encoder(encoder, vocab_path, directory / "encoder", lowercase=True)


def test_frozen_then_full_evaluates_every_n_steps_across_both_phases(tiny_encoder_dir, tmp_path):
    config = load_config(config_file("bert_finetune_sentiment_zh.yaml"), [
        "data.limit=160", "data.sequence_length=32", "data.batch_size=16", "data.eval_batch_size=64",
        "trainer.epochs=2", "trainer.eval_every_steps=4", "trainer.steps_per_execution=3",
        "trainer.layer_decay=0.8", f"finetune.encoder={tiny_encoder_dir}", "finetune.frozen_epochs=1",
        "precision=float32", "strategy=default"], model_dir=str(tmp_path))
    result = finetune.run(config)
    steps_per_epoch = 10  # 160 training examples in batches of 16
    evaluations = result["evaluations"]
    frozen = [4, 8, 10]  # the frozen epoch's evaluations, then the full phase's continue from step 10
    full = [10 + s for s in (4, 8, 10, 12, 16, 20)]
    assert [e["step"] for e in evaluations] == frozen + full
    assert [e["epoch"] for e in evaluations] == [s / steps_per_epoch for s in frozen + full]
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)
    assert saved["evaluations"] == evaluations
    best = max(e["val_accuracy"] for e in evaluations)
    # The saved model is the best over both phases.
    assert result["metrics"]["validation"]["accuracy"] == pytest.approx(best)


def test_model_dropout_replaces_the_rate_a_loaded_encoder_was_saved_with(tiny_encoder_dir, tmp_path, capsys):
    assert tfm_models.load_encoder(tiny_encoder_dir).encoder.dropout == pytest.approx(0.1)
    config = load_config(config_file("bert_finetune_sentiment_zh.yaml"), [
        "data.limit=64", "data.sequence_length=32", "data.batch_size=16", "trainer.epochs=1",
        f"finetune.encoder={tiny_encoder_dir}", "finetune.mode=full", "model.dropout=0.3",
        "precision=float32", "strategy=default"], model_dir=str(tmp_path))
    finetune.run(config)
    assert "encoder dropout: 0.1 as saved, 0.3 for fine-tuning (model.dropout)" in capsys.readouterr().out
    saved = common.load_model(str(tmp_path / common.MODEL_FILE))
    encoder = tfm_models.find_encoder(saved)
    assert encoder.dropout == pytest.approx(0.3)
    assert encoder.embeddings_dropout.rate == pytest.approx(0.3)
    assert saved.get_layer("head_dropout").rate == pytest.approx(0.3)


class _CrashAt(keras.callbacks.Callback):
    """Raises at the `at`-th train batch end (a kill part-way through)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.batches = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.at:
            raise RuntimeError("killed")


def _gradual_run(model_dir, crash_at=None):
    """3 epochs of gradual unfreezing (one more layer per epoch) on random tokens; the final weights."""
    keras.utils.set_random_seed(0)
    model = _tiny_bert_classifier(num_layers=2)
    unfreezer = tfm_models.GradualUnfreezer(model, every=1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 100, size=(64, 16)).astype("int32")
    features = {"token_ids": tokens, "padding_mask": np.ones_like(tokens), "segment_ids": np.zeros_like(tokens)}
    data = tf.data.Dataset.from_tensor_slices((features, (tokens[:, 0] % 2).astype("int32"))).batch(16)
    trainer = tfm_training.Trainer(model, tfm_training.build_optimizer("adamw", 1e-3, decay="constant"),
                                   model_dir=str(model_dir), checkpoint_every_steps=2, best_metric=None,
                                   verbose=0, seed=0)
    callbacks = [finetune.GradualUnfreezing(unfreezer)] + ([_CrashAt(crash_at)] if crash_at else [])
    trainer.fit(data, epochs=3, callbacks=callbacks)
    return [w.numpy() for w in model.weights]


def test_gradual_unfreezing_resumed_part_way_trains_the_layers_the_uninterrupted_run_did(tmp_path):
    uninterrupted = _gradual_run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="killed"):
        _gradual_run(tmp_path / "b", crash_at=6)  # in epoch 2 of 3 (4 batches each), after ckpt-6
    resumed = _gradual_run(tmp_path / "b")
    assert all(np.array_equal(a, b) for a, b in zip(uninterrupted, resumed))
