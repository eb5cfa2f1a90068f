"""The training augmentations `data.input_mask_rate` and `data.crop_rate` reach the training batches
of a classifier run and nothing else."""
import os

import numpy as np
import pytest

from tfmodels import data as tfm_data
from tfmodels.config import load_config
from tfmodels.tasks import common

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def _demo_datasets(vocab_path, overrides):
    """(vocabulary tokens, training dataset, {split: evaluation dataset}) of the demo's config on 300
    examples per split with `overrides`; the vocabulary is built at `vocab_path` unless it is there."""
    config = load_config(os.path.join(CONFIGS, "demo_zh_sentiment.yaml"),
                         ["data.limit=300", "data.batch_size=16", *overrides])
    splits = common.load_text_splits(config)
    if os.path.exists(vocab_path):
        tokens = tfm_data.load_vocab(vocab_path)
    else:
        tokens = tfm_data.build_wordpiece_vocab(splits.train.texts, vocab_size=400, output_path=vocab_path)
    train, evaluation = common.text_datasets(config, splits, vocab_path, lowercase=True)
    return tokens, train, evaluation


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_only_training_batches_are_masked_at_the_configured_rate(tmp_path, rate):
    tokens, train, evaluation = _demo_datasets(str(tmp_path / "vocab.txt"), [f"data.input_mask_rate={rate}"])
    mask_id = tokens.index("[MASK]")
    train_ids = np.concatenate([features["token_ids"].numpy().ravel() for features, *_ in train])
    text = ~np.isin(train_ids, [tokens.index(t) for t in ("[PAD]", "[CLS]", "[SEP]")])
    assert np.count_nonzero(train_ids == mask_id) / np.count_nonzero(text) == pytest.approx(rate, abs=0.03)
    for dataset in evaluation.values():
        assert not any((features["token_ids"].numpy() == mask_id).any() for features, _ in dataset)


def _token_counts(dataset):
    return sorted(int(n) for features, *_ in dataset for n in features["padding_mask"].numpy().sum(axis=1))


def test_only_training_texts_are_cut_to_spans(tmp_path):
    vocab_path = str(tmp_path / "vocab.txt")
    _, whole_train, whole_evaluation = _demo_datasets(vocab_path, ["data.crop_rate=0.0", "data.crop_min_tokens=10"])
    _, cut_train, cut_evaluation = _demo_datasets(vocab_path, ["data.crop_rate=1.0", "data.crop_min_tokens=10"])
    whole, cut = np.array(_token_counts(whole_train)), np.array(_token_counts(cut_train))
    assert cut.sum() < 0.8 * whole.sum()  # every text longer than 10 tokens is cut ...
    assert cut.min() == whole.min() and (cut[whole <= 12] == whole[whole <= 12]).all()  # ... short ones stay whole
    for name in whole_evaluation:
        assert _token_counts(cut_evaluation[name]) == _token_counts(whole_evaluation[name])
