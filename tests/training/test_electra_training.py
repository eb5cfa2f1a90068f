"""A tiny ELECTRA pretrainer in the Trainer on real text: two replicas, loss scaling, exact resume."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data as tfm_data
from tfmodels.models import build_bert_encoder, build_electra_pretrainer
from tfmodels.training import Electra, Trainer, apply_precision, build_optimizer, get_strategy


@pytest.fixture(scope="module")
def electra_batches(tmp_path_factory):
    """A function returning a new dataset of ELECTRA batches of 120 lines of the embedded Chinese
    corpus (masks are re-drawn for each iteration of a dataset, so every run gets its own), and the
    vocabulary size."""
    texts = tfm_data.load_zh_corpus().texts[:120]
    vocab_path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    tfm_data.build_wordpiece_vocab(texts, vocab_size=200, output_path=vocab_path)
    tokenizer = tfm_data.make_tokenizer(vocab_path)

    def new_batches():
        return tfm_data.electra_dataset(tfm_data.mlm_dataset(texts, tokenizer, 24, 8, max_predictions=4,
                                                             shuffle=True, repeat=True, seed=3))
    return new_batches, tokenizer.vocabulary_size()


@pytest.fixture(autouse=True)
def _float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def electra_run(model_dir, batches, vocabulary_size, steps, strategy, precision="float32"):
    apply_precision(precision)
    keras.utils.set_random_seed(7)
    with strategy.scope():
        encoder = build_bert_encoder("tiny", vocabulary_size=vocabulary_size, max_sequence_length=24,
                                     num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64)
        model = build_electra_pretrainer(encoder, generator_width=0.5, seed=11)
        optimizer = build_optimizer("adamw", 2e-3, decay="constant")
    trainer = Trainer(model, optimizer, objective=Electra(50.0), strategy=strategy, model_dir=model_dir,
                      checkpoint_every_steps=2, log_every_steps=2, best_metric=None, verbose=0)
    history = trainer.fit(batches(), steps=steps, steps_per_epoch=2)
    return trainer, history


@pytest.mark.parametrize("precision", [
    "mixed_float16",  # with loss scaling, in make test
    pytest.param("mixed_bfloat16", marks=pytest.mark.slow)])  # about 30 s in make test
def test_two_replicas_in_low_precision_train(electra_batches, precision, tmp_path):
    batches, vocabulary_size = electra_batches
    trainer, history = electra_run(str(tmp_path), batches, vocabulary_size, 6, get_strategy("mirrored"), precision)
    assert trainer.strategy.num_replicas_in_sync == 2
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    assert history["loss"][-1] < history["loss"][0], history["loss"]
    assert all(np.isfinite(values).all() for values in history.values())
    metrics = trainer.evaluate(batches().take(2))
    assert 0.0 < metrics["replaced_fraction"] < 0.5 and np.isfinite(metrics["loss"])


def test_resume_continues_exactly(electra_batches, tmp_path):
    """Four steps in one go equal two steps, a new model, optimizer and data iterator, and a resume
    to four: the sampling seed comes back from the checkpoint with the rest."""
    tf.config.experimental.enable_op_determinism()
    batches, vocabulary_size = electra_batches
    strategy = get_strategy("default")
    uninterrupted, _ = electra_run(str(tmp_path / "a"), batches, vocabulary_size, 4, strategy)
    electra_run(str(tmp_path / "b"), batches, vocabulary_size, 2, strategy)
    resumed, _ = electra_run(str(tmp_path / "b"), batches, vocabulary_size, 4, strategy)
    assert int(resumed.global_step.numpy()) == 4
    seeds = [v for v in resumed.model.variables if "sampling_seed" in v.path]
    assert len(seeds) == 1
    for got, want in zip(resumed.model.variables, uninterrupted.model.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
