"""Which tokens of a too-long text a classifier sees: one rule for training, evaluation and export.

`head` keeps the first tokens (BERT's default). `head_tail` keeps the first `head_tokens` and the
last tokens of a text longer than the budget (Sun et al. 2019, "How to Fine-Tune BERT for Text
Classification?": head + tail truncation beat head-only and tail-only on long reviews), since a
review's verdict often comes at its end.

The rule's checks import no TensorFlow (the config validates with them); the cuts do.
"""
from tfmodels.choices import TRUNCATIONS


def text_token_budget(sequence_length: int) -> int:
    """Tokens of one text that fit a packed `[CLS] text [SEP]` sequence of `sequence_length`."""
    return sequence_length - 2


def resolve_head_tokens(truncation: str, sequence_length: int, head_tokens: int | None,
                        text_pairs: bool = False) -> int | None:
    """The head length `head_tail` keeps (None for `head`), or raises naming what is allowed.

    `head_tokens=None` keeps a quarter of the budget from the start, as Sun et al. (128 of 510).
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation={truncation!r} invalid; allowed: {', '.join(TRUNCATIONS)}")
    if truncation == "head":
        if head_tokens is not None:
            raise ValueError(f"head_tokens={head_tokens!r} invalid with truncation='head'; allowed: "
                             "unset, or set truncation to head_tail")
        return None
    if text_pairs:
        raise ValueError(f"truncation={truncation!r} invalid with text pairs; allowed: head "
                         "(pairs are trimmed round-robin from their ends)")
    budget = text_token_budget(sequence_length)
    if head_tokens is None:
        return budget // 4
    if not isinstance(head_tokens, int) or isinstance(head_tokens, bool) or not 0 <= head_tokens <= budget:
        raise ValueError(f"head_tokens={head_tokens!r} invalid; allowed: an int in [0, {budget}] "
                         f"(sequence_length {sequence_length} minus [CLS] and [SEP])")
    return head_tokens


def keep_head_and_tail(token_ids, budget: int, head_tokens: int):
    """Rows longer than `budget` keep their first `head_tokens` and last `budget - head_tokens`
    tokens; shorter rows are unchanged.

    Example:
        >>> keep_head_and_tail(tf.ragged.constant([[1, 2, 3, 4, 5, 6], [7, 8]]), 4, 1).to_list()
        [[1, 4, 5, 6], [7, 8]]
    """
    import tensorflow as tf
    lengths = token_ids.row_lengths()
    positions = tf.ragged.range(lengths)
    tail_start = tf.expand_dims(lengths - (budget - head_tokens), 1)
    too_long = tf.expand_dims(lengths > budget, 1)
    keep = tf.logical_or(tf.logical_not(too_long),
                         tf.logical_or(positions < head_tokens, positions >= tail_start))
    return tf.ragged.boolean_mask(token_ids, keep)


def truncate_text_tokens(token_ids, sequence_length: int, truncation: str = "head",
                         head_tokens: int | None = None):
    """A batch of one text's token ids cut to the packed budget by `truncation`.

    Args:
        token_ids: RaggedTensor [B, None] of token ids (no [CLS]/[SEP]), or the nested lists
            a keras-hub tokenizer returns when called eagerly.
        sequence_length: int. Packed length including [CLS] and [SEP].
        truncation: str. One of `TRUNCATIONS`. Defaults to "head".
        head_tokens: int | None. With `head_tail`: tokens kept from the start (see
            `resolve_head_tokens`). Defaults to None.
    """
    import tensorflow as tf
    if isinstance(token_ids, list):
        token_ids = tf.ragged.constant(token_ids, dtype=tf.int32, ragged_rank=1)
    head = resolve_head_tokens(truncation, sequence_length, head_tokens)
    budget = text_token_budget(sequence_length)
    if head is None:
        return token_ids[:, :budget]
    return keep_head_and_tail(token_ids, budget, head)
