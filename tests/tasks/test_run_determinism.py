"""`deterministic` in a run: each run's config turns TensorFlow's process-wide op determinism on or
off, so a deterministic run no longer leaves it on for the later runs of the process; the training
data keeps its seeded order either way."""
import logging
import os

import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from tfmodels.config import load_config
from tfmodels.tasks import common

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


@pytest.fixture
def start(tmp_path):
    """Starts a run of the MLP config with the given `deterministic`; returns whether it is on."""
    runs = iter(range(100))

    def start_run(deterministic):
        config = load_config(os.path.join(CONFIGS, "mlp_digits.yaml"),
                             [f"deterministic={str(deterministic).lower()}", "precision=float32"],
                             model_dir=str(tmp_path / f"run{next(runs)}"))
        common.start_run(config)
        return tf_framework_config.is_op_determinism_enabled()
    return start_run


def test_a_run_without_deterministic_turns_off_what_an_earlier_run_turned_on(start):
    assert not tf_framework_config.is_op_determinism_enabled()
    assert start(deterministic=True)
    assert start(deterministic=True)
    assert not start(deterministic=False)
    assert not start(deterministic=False)
    assert start(deterministic=True)


def test_the_config_decides_also_when_the_user_turned_it_on(start, caplog):
    tf.config.experimental.enable_op_determinism()
    with caplog.at_level(logging.INFO, logger="tfmodels"):
        assert not start(deterministic=False)
    assert "op determinism turned off" in caplog.text
    assert "set deterministic: true to keep it" in caplog.text


def test_training_batches_keep_the_seeded_order_without_op_determinism(tmp_path):
    """`deterministic: false` leaves ops free, not the data order: a map allowed to run out of order
    swapped batches of an epoch whenever other work shared the CPU."""
    from tfmodels import data as tfm_data
    config = load_config(os.path.join(CONFIGS, "demo_zh_sentiment.yaml"),
                         ["deterministic=false", "data.limit=300", "data.batch_size=16"])
    splits = common.load_text_splits(config)
    vocab = tfm_data.build_wordpiece_vocab(splits.train.texts, vocab_size=400, output_path=str(tmp_path / "vocab.txt"))
    epochs = []
    for _ in range(2):  # two runs' first epochs
        train, _ = common.text_datasets(config, splits, str(tmp_path / "vocab.txt"), lowercase=True)
        assert train.options().deterministic is True
        epochs.append([features["token_ids"].numpy().tolist() for features, *_ in train])
    assert vocab and epochs[0] == epochs[1]
