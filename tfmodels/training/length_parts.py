"""A training batch run as parts of similar length, each padded only to its own longest sequence.

A batch of texts padded to its longest one spends most of its work on padding when lengths vary
(the reviews: median 39 tokens, nearly every batch of 32 holds one of 126 or more). The Trainer's
`length_sorted_parts=k` sorts the rows of each (replica-local) batch by real length, cuts them into k
parts of nearly equal size and trims each part's per-position features to its longest row. The
parts then run as micro-batches of one optimizer step: every loss term is still divided by the
whole batch's count, so the step's gradient is the whole batch's, computed over fewer padding
positions. What changes is only floating-point rounding and the draws of dropout masks, which
depend on the tensors' shapes.

This holds for models whose output for a row does not depend on how far the row is padded: a BERT
encoder masks padding in attention and pooling.
"""
import tensorflow as tf

# Features with one value per token position: trimmed to the part's longest row. Every other
# feature, the labels and the sample weights are per row (or per prediction) and only reordered.
PER_POSITION_FEATURES = ("token_ids", "padding_mask", "segment_ids")
LENGTH_FEATURE = "padding_mask"


class LengthPartsError(ValueError):
    """A batch cannot be split by length."""


def split_by_length(features, labels, sample_weight, num_parts: int):
    """Returns `num_parts` (features, labels, sample_weight) parts of one batch, rows sorted by length
    (one past the last real position, `real_extent`).

    Args:
      features: dict of tensors [B, ...] with a `padding_mask` [B, L] (1 at real tokens).
      labels: tensor [B, ...] or None.
      sample_weight: tensor [B, ...] or None.
      num_parts: int. How many parts; part i holds rows [i*B//k, (i+1)*B//k) of the sorted order
        (an empty part when B < k). Ties keep the batch's order.
    """
    check_features(features)
    lengths = real_extent(features[LENGTH_FEATURE])
    order = tf.argsort(lengths, stable=True)
    size = tf.shape(order)[0]
    parts = []
    for index in range(num_parts):
        start, end = contiguous_share(size, index, num_parts)
        rows = order[start:end]
        # At least one position, so an empty part still has a valid (empty) shape.
        width = tf.reduce_max(tf.concat([[1], tf.gather(lengths, rows)], axis=0))
        parts.append((_part_features(features, rows, width), _rows(labels, rows), _rows(sample_weight, rows)))
    return parts


def contiguous_share(size, index, count):
    """(start, end) of share `index` of `count` nearly equal contiguous shares of `size` rows:
    [index*size//count, (index+1)*size//count). The rule both for a batch's parts and for each
    replica's slice of a global batch."""
    return (size * index) // count, (size * (index + 1)) // count


def check_features(features) -> None:
    """Raises LengthPartsError unless `features` (tensors or their specs) is a dict with a padding mask."""
    if not isinstance(features, dict) or LENGTH_FEATURE not in features:
        raise LengthPartsError(
            f"length_sorted_parts needs features with a {LENGTH_FEATURE!r} (token inputs such as BERT's); "
            f"got {sorted(features) if isinstance(features, dict) else type(features).__name__}")


def real_extent(padding_mask):
    """Per row, one past the last real position (int32 [B]): trimming to it keeps every real token
    wherever the padding sits."""
    positions = tf.range(1, tf.shape(padding_mask)[1] + 1)
    return tf.reduce_max(tf.cast(padding_mask, tf.int32) * positions[tf.newaxis, :], axis=1)


def _part_features(features, rows, width):
    return {name: (tf.gather(value, rows)[:, :width] if name in PER_POSITION_FEATURES else tf.gather(value, rows))
            for name, value in features.items()}


def _rows(tensor, rows):
    return None if tensor is None else tf.gather(tensor, rows)
