"""What a "word" is for whole-word masking, and the word segmentation of text without spaces.

BERT's whole-word masking selects a word with all of its "##" WordPiece continuations
("wordpiece"). Chinese text is tokenized one character per token, so no token is a continuation
and that rule masks single characters: a model then learns to complete a word from its other
characters. Chinese BERT-wwm (Cui et al., 2019) instead segments the text into words and masks
every character of a chosen word together ("jieba": the jieba segmenter's words).

The masked-LM pipeline carries the word boundaries from tokenization to the masker inside the
token ids: a token that continues a word travels as the bitwise complement of its id (~id, which
is negative) and the masker restores it (`encode_word_continuations`, `decode_word_starts`).
"""
import logging

import tensorflow as tf

from tfmodels import choices

WORD_SEGMENTERS = choices.WORD_SEGMENTERS


def check_word_segmenter(name):
    """Raises ValueError unless `name` is one of WORD_SEGMENTERS."""
    if name not in WORD_SEGMENTERS:
        raise ValueError(f"word_segmenter={name!r} unknown; choose one of {', '.join(WORD_SEGMENTERS)}")


def _jieba():
    import jieba
    jieba.setLogLevel(logging.WARNING)
    return jieba


def segments_text(word_segmenter):
    """True when `word_segmenter` cuts text into words before tokenization (not "wordpiece")."""
    check_word_segmenter(word_segmenter)
    return word_segmenter != "wordpiece"


def segment_words(texts, word_segmenter):
    """Each text's words separated by single spaces, whitespace dropped.

    Args:
        texts: list[str]. Lines of text.
        word_segmenter: str. "jieba" segments with jieba's default dictionary (deterministic).

    Example:
        >>> segment_words(["这部电影太好看了"], "jieba")
        ['这部 电影 太 好看 了']
    """
    if not segments_text(word_segmenter):
        raise ValueError(f"word_segmenter={word_segmenter!r} does not segment text; "
                         f"choose one of {', '.join(w for w in WORD_SEGMENTERS if w != 'wordpiece')}")
    jieba = _jieba()
    return [" ".join(word for word in jieba.lcut(text) if word.strip()) for text in texts]


def tokenize_words(tokenizer, lines):
    """Tokenizes a batch of space-separated words, each word's continuation tokens as ~id.

    Args:
        tokenizer: keras_hub BertTokenizer.
        lines: string Tensor [B]. Words separated by spaces (`segment_words`).

    Returns:
        int32 RaggedTensor [B, (tokens)]: the ids a plain tokenization of the line gives, except
        that every token after the first of its word is ~id.
    """
    words = tf.strings.split(lines)
    pieces = tokenizer(words.flat_values)
    if isinstance(pieces, list):  # keras-hub's eager output; in tf.data it is a RaggedTensor
        pieces = tf.ragged.constant(pieces, tf.int32, ragged_rank=1, inner_shape=())
    pieces = tf.cast(pieces, tf.int32)
    position_in_word = tf.ragged.range(pieces.row_lengths()).flat_values
    encoded = pieces.with_flat_values(encode_word_continuations(pieces.flat_values, position_in_word > 0))
    return tf.RaggedTensor.from_row_lengths(encoded, words.row_lengths()).merge_dims(1, 2)


def encode_word_continuations(token_ids, continues_word):
    """~id where `continues_word`, the id elsewhere."""
    return tf.where(continues_word, tf.bitwise.invert(token_ids), token_ids)


def decode_word_starts(token_ids):
    """(token ids, word starts bool): undoes `encode_word_continuations`."""
    starts = token_ids >= 0
    return tf.where(starts, token_ids, tf.bitwise.invert(token_ids)), starts
