"""`data.input_mask_rate` reaches the training batches of a classifier run and nothing else."""
import os

import numpy as np
import pytest

from tfmodels import data as tfm_data
from tfmodels.config import load_config
from tfmodels.tasks import common

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_only_training_batches_are_masked_at_the_configured_rate(tmp_path, rate):
    config = load_config(os.path.join(CONFIGS, "demo_zh_sentiment.yaml"),
                         ["data.limit=300", "data.batch_size=16", f"data.input_mask_rate={rate}"])
    splits = common.load_text_splits(config)
    vocab_path = str(tmp_path / "vocab.txt")
    tokens = tfm_data.build_wordpiece_vocab(splits.train.texts, vocab_size=400, output_path=vocab_path)
    mask_id = tokens.index("[MASK]")
    train, evaluation = common.text_datasets(config, splits, vocab_path, lowercase=True)
    train_ids = np.concatenate([features["token_ids"].numpy().ravel() for features, *_ in train])
    text = ~np.isin(train_ids, [tokens.index(t) for t in ("[PAD]", "[CLS]", "[SEP]")])
    assert np.count_nonzero(train_ids == mask_id) / np.count_nonzero(text) == pytest.approx(rate, abs=0.03)
    for dataset in evaluation.values():
        assert not any((features["token_ids"].numpy() == mask_id).any() for features, _ in dataset)
