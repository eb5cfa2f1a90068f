"""`data.crop_rate` reaches the training batches of a classifier run and nothing else."""
import os

import numpy as np

from tfmodels import data as tfm_data
from tfmodels.config import load_config
from tfmodels.tasks import common

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def _token_counts(dataset):
    return sorted(int(n) for features, *_ in dataset for n in features["padding_mask"].numpy().sum(axis=1))


def test_only_training_texts_are_cut_to_spans(tmp_path):
    def datasets(rate):
        config = load_config(os.path.join(CONFIGS, "demo_zh_sentiment.yaml"),
                             ["data.limit=300", "data.batch_size=16", f"data.crop_rate={rate}",
                              "data.crop_min_tokens=10"])
        splits = common.load_text_splits(config)
        vocab_path = str(tmp_path / "vocab.txt")
        if not os.path.exists(vocab_path):
            tfm_data.build_wordpiece_vocab(splits.train.texts, vocab_size=400, output_path=vocab_path)
        return common.text_datasets(config, splits, vocab_path, lowercase=True)

    whole_train, whole_evaluation = datasets(0.0)
    cut_train, cut_evaluation = datasets(1.0)
    whole, cut = np.array(_token_counts(whole_train)), np.array(_token_counts(cut_train))
    assert cut.sum() < 0.8 * whole.sum()  # every text longer than 10 tokens is cut ...
    assert cut.min() == whole.min() and (cut[whole <= 12] == whole[whole <= 12]).all()  # ... short ones stay whole
    for name in whole_evaluation:
        assert _token_counts(cut_evaluation[name]) == _token_counts(whole_evaluation[name])
