"""tf.data pipelines: in-graph tokenization, packing, masked-LM masking, batching.

Batch formats follow ARCHITECTURE.md:

* classification: ({token_ids, padding_mask, segment_ids} int32 [B, L], labels int32 [B])
* masked LM: ({token_ids, padding_mask, segment_ids, mask_positions}, mask_ids int32 [B, P],
  mask_weights float32 [B, P])
* MLP: ({"features": float32 [B, ...]}, labels int32 [B])
"""
import functools
import math

import numpy as np
import tensorflow as tf

from tfmodels.data.segmentation import (decode_word_starts, segment_words, segments_text,
                                        tokenize_words)
from tfmodels.data.truncation import keep_head_and_tail, resolve_head_tokens, text_token_budget
from tfmodels.data.vocab import (CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, RESERVED_TOKENS,
                                 SEP_TOKEN, load_vocab, validate_vocab)

AUTOTUNE = tf.data.AUTOTUNE
_TOKENIZE_BATCH = 1024


def make_tokenizer(vocab, lowercase=True):
    """Builds the in-graph WordPiece tokenizer (keras-hub BertTokenizer, CJK split per char).

    Args:
        vocab: str | list[str]. Path of a vocab.txt (or its directory) or the token list.
        lowercase: bool. Lowercase input text; must match how the vocab was built.
            Defaults to True.

    Example:
        >>> tokenizer = make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好"])
        >>> tokenizer.token_to_id("好")
        5
    """
    import keras_hub
    tokens = load_vocab(vocab) if isinstance(vocab, str) else validate_vocab(vocab)
    return keras_hub.tokenizers.BertTokenizer(vocabulary=tokens, lowercase=lowercase)


def token_id_lists(tokenizer, texts, batch_size=4096):
    """Tokenizes `texts` eagerly, `batch_size` at a time; returns a Python list of id lists.

    Example:
        >>> tokenizer = make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好"])
        >>> token_id_lists(tokenizer, ["好好", ""])
        [[5, 5], []]
    """
    texts = list(texts)
    lists = []
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(texts[start:start + batch_size])
        lists.extend(ids.to_list() if hasattr(ids, "to_list") else ids)
    return lists


def _special_ids(tokenizer):
    return {token: tokenizer.token_to_id(token) for token in RESERVED_TOKENS}


def _apply_options(dataset, deterministic):
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return dataset.with_options(options)


def _shard(dataset, shard, input_context, batch_size):
    """Applies explicit `(num_shards, index)` sharding or a tf.distribute InputContext."""
    if shard is not None:
        num_shards, index = shard
        if not 0 <= index < num_shards:
            raise ValueError(f"shard={shard!r} invalid; need (num_shards, index) with "
                             f"0 <= index < num_shards")
        dataset = dataset.shard(num_shards, index)
    if input_context is not None:
        dataset = dataset.shard(input_context.num_input_pipelines,
                                input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    return dataset, batch_size


def _check_positive(name, value):
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} invalid; must be a positive integer")


def _tokenized_segments(texts_per_segment, tokenizer, max_length, deterministic, cut=None,
                        tokenize_batch=None):
    """Dataset of per-example tuples of 1-D int32 token ids, tokenized in large batches.

    Args:
        cut: callable | None. Cuts a batch of one segment's token ids (RaggedTensor) to what
            the model sees; None keeps the first `max_length` tokens (all when that is None).
        tokenize_batch: callable | None. Batch of strings -> int32 RaggedTensor of ids; None
            calls `tokenizer`.
    """
    dataset = tf.data.Dataset.from_tensor_slices(
        tuple(tf.constant(list(texts), tf.string) for texts in texts_per_segment))
    tokenize_batch = tokenize_batch or (lambda texts: tf.cast(tokenizer(texts), tf.int32))

    def tokenize(*segments):
        ids = [tokenize_batch(s) for s in segments]
        if cut is not None:
            return tuple(cut(segment) for segment in ids)
        return tuple(segment[:, :max_length] if max_length else segment for segment in ids)

    return dataset.batch(_TOKENIZE_BATCH).map(
        tokenize, num_parallel_calls=AUTOTUNE, deterministic=deterministic).unbatch()


def _text_cut(truncation, head_tokens, sequence_length, num_segments):
    """The cut `_tokenized_segments` applies for `truncation`: None for "head" (the packer's
    round-robin trim), head + tail for single texts; raises for "head_tail" with text pairs."""
    head = resolve_head_tokens(truncation, sequence_length, head_tokens, text_pairs=num_segments > 1)
    if head is None:
        return None
    budget = text_token_budget(sequence_length)
    return lambda token_ids: keep_head_and_tail(token_ids, budget, head)


def _pack(segments, sequence_length, special):
    """[CLS] a [SEP] (b [SEP]) with round-robin truncation; returns the three int32 features."""
    import keras_hub
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=sequence_length, start_value=special[CLS_TOKEN],
        end_value=special[SEP_TOKEN], pad_value=special[PAD_TOKEN],
        truncate="round_robin", name="segment_packer")
    token_ids, segment_ids = packer(tuple(segments))
    token_ids = tf.cast(token_ids, tf.int32)
    return {"token_ids": token_ids,
            "padding_mask": tf.cast(token_ids != special[PAD_TOKEN], tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32)}


def _trim_to_longest(features):
    """Dynamic padding: cut the batch to its longest real sequence."""
    longest = tf.reduce_max(tf.reduce_sum(features["padding_mask"], axis=1))
    return {key: value[:, :longest] for key, value in features.items()}


def _cache_shuffle_repeat(dataset, cache, shuffle, size, seed, repeat):
    """Caches, fully reshuffles every epoch with a seed, and repeats, each when asked."""
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset


def _check_length_buckets(length_buckets, sequence_length):
    """Returns the boundaries below `sequence_length` as a tuple, or raises naming what is allowed.

    Boundaries at or above the packed length split nothing and are dropped, so one data block
    serves any `sequence_length`.
    """
    boundaries = tuple(length_buckets) if isinstance(length_buckets, (list, tuple)) else ()
    valid = (boundaries and all(isinstance(b, (int, np.integer)) and not isinstance(b, bool)
                                and b > 1 for b in boundaries)
             and all(a < b for a, b in zip(boundaries, boundaries[1:])))
    if not valid:
        raise ValueError(f"length_buckets={length_buckets!r} invalid; need strictly increasing "
                         f"integers >= 2 (packed tokens), e.g. [32, 64]")
    return tuple(int(b) for b in boundaries if b < sequence_length)


def _packed_length(segments):
    """Length of `[CLS] a [SEP] (b [SEP])` before truncation, as int64."""
    tokens = tf.add_n([tf.size(segment, out_type=tf.int64) for segment in segments])
    return tokens + len(segments) + 1


def _batch_by_length(dataset, boundaries, batch_size, drop_remainder, packed_length):
    """Ragged batches whose examples share a length bucket (`< b` for each boundary b).

    Examples arrive shuffled; each bucket collects them until it holds `batch_size`, so batch
    order stays random while short reviews are no longer padded to a long neighbour.

    Args:
        packed_length: callable. An element's length in packed tokens (int64).
    """
    limits = tf.constant(boundaries, tf.int64)

    def bucket(*element):
        return tf.reduce_sum(tf.cast(packed_length(*element) >= limits, tf.int64))

    def batch(key, window):
        del key
        return window.ragged_batch(batch_size, drop_remainder=drop_remainder)

    return dataset.group_by_window(bucket, batch, window_size=batch_size)


def classification_dataset(examples, tokenizer, sequence_length, batch_size, *,
                           shuffle=True, seed=42, repeat=False, cache=True,
                           deterministic=True, drop_remainder=False, dynamic_padding=False,
                           length_buckets=None, order_by_length=False, truncation="head",
                           head_tokens=None, input_mask_rate=0.0, crop_rate=0.0, crop_min_tokens=16,
                           shard=None, input_context=None):
    """Builds the text classification pipeline.

    Texts are tokenized once (in the graph, in large batches) and cached; each epoch
    reshuffles with a seeded shuffle, batches, packs `[CLS] a [SEP] (b [SEP])` with
    round-robin truncation to `sequence_length`, and prefetches.

    Args:
        examples: TextExamples. Texts, int32 labels and optional text pairs.
        tokenizer: keras_hub BertTokenizer (see `make_tokenizer`).
        sequence_length: int. Packed length L including [CLS]/[SEP].
        batch_size: int. Global batch size (per-replica when `input_context` is given).
        shuffle: bool. Seeded reshuffle every epoch. Defaults to True.
        seed: int. Shuffle seed. Defaults to 42.
        repeat: bool. Repeat forever. Defaults to False.
        cache: bool. Cache tokenized examples in memory. Defaults to True.
        deterministic: bool. Keep element order deterministic. Defaults to True.
        drop_remainder: bool. Drop the last partial batch. Defaults to False.
        dynamic_padding: bool. Pad each batch only to its longest sequence (<= L). Defaults
            to False (always L).
        length_buckets: list[int] | None. Bucket boundaries in packed tokens, e.g. [32, 64]:
            each batch takes examples of one bucket only and is padded to its longest
            (implies dynamic padding). Much faster when most texts are short but a few are
            long; it changes the batch order (keep it off for evaluation). Defaults to None.
        order_by_length: bool. Batch the examples from the shortest text to the longest (in
            characters, text pairs included), so that with `dynamic_padding` a batch pads to texts
            of similar length. For evaluation, where only summed metrics count: the order of
            the examples is not kept. Needs `shuffle=False`. Defaults to False.
        truncation: str. Which tokens of a too-long text are kept (`tfmodels.data.truncation`):
            "head" (the first ones) or "head_tail" (the first `head_tokens` and the last ones;
            single texts only). Defaults to "head".
        head_tokens: int | None. With "head_tail": tokens kept from the start; None keeps a
            quarter of sequence_length - 2. Defaults to None.
        input_mask_rate: float. Share of the text tokens of every example replaced by [MASK],
            drawn afresh each epoch from `seed` (a training augmentation, Shen et al. 2020's token
            cutoff with the masked LM's own mask token); [CLS], [SEP] and padding are never
            replaced. 0 keeps the tokens. Defaults to 0.0.
        crop_rate: float. Share of the examples cut to one random contiguous span of their text's
            tokens, drawn afresh each epoch from `seed` (a training augmentation: short texts of a
            kind the data holds only long, with the long text's label; `crop_spans`). Single texts
            only. 0 keeps every text whole. Defaults to 0.0.
        crop_min_tokens: int. A cut span's least length in tokens; texts no longer than it stay
            whole. Defaults to 16.
        shard: tuple(int, int) | None. Explicit (num_shards, index) sharding.
        input_context: tf.distribute.InputContext | None. Shard per input pipeline and
            use the per-replica batch size (for `distribute_datasets_from_function`).

    Returns:
        tf.data.Dataset of ({token_ids, padding_mask, segment_ids} int32 [B, L], labels int32 [B]).
    """
    _check_positive("sequence_length", sequence_length)
    _check_positive("batch_size", batch_size)
    if len(examples) == 0:
        raise ValueError("examples is empty; a classification dataset needs at least one example")
    boundaries = (_check_length_buckets(length_buckets, sequence_length)
                  if length_buckets else None)
    if order_by_length:
        if shuffle:
            raise ValueError("order_by_length=True needs shuffle=False: it fixes the order of the examples")
        examples = examples.subset(examples.shortest_first())
    special = _special_ids(tokenizer)
    segments = [examples.texts] + ([examples.text_pairs] if examples.text_pairs is not None
                                   else [])
    cut = _text_cut(truncation, head_tokens, sequence_length, num_segments=len(segments))
    if crop_rate and len(segments) > 1:
        raise ValueError(f"crop_rate={crop_rate!r} needs single texts; these examples have text pairs")
    # In order whatever `deterministic` says: the labels are zipped with the tokens by position.
    tokens = _tokenized_segments(segments, tokenizer, sequence_length, deterministic=True, cut=cut)
    labels = tf.data.Dataset.from_tensor_slices(examples.labels.astype(np.int32))
    dataset = tf.data.Dataset.zip((tokens, labels))
    dataset, batch_size = _shard(dataset, shard, input_context, batch_size)
    dataset = _cache_shuffle_repeat(dataset, cache, shuffle, len(examples), seed, repeat)
    if boundaries:
        dataset = _batch_by_length(dataset, boundaries, batch_size, drop_remainder,
                                   lambda segments, label: _packed_length(segments))
    else:
        dataset = dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)

    def to_features(segments_batch, labels_batch):
        features = _pack(segments_batch, sequence_length, special)
        if dynamic_padding or boundaries:
            features = _trim_to_longest(features)
        return features, labels_batch

    if crop_rate:
        dataset = _crop_texts(dataset, crop_rate, crop_min_tokens, text_token_budget(sequence_length), seed,
                              deterministic)
    dataset = dataset.map(to_features, num_parallel_calls=AUTOTUNE,
                          deterministic=deterministic)
    if input_mask_rate:
        dataset = _mask_inputs(dataset, input_mask_rate, seed, special, deterministic)
    return _apply_options(dataset.prefetch(AUTOTUNE), deterministic)


def _batch_seeds(seed, fresh_each_iteration):
    """An endless dataset of [2] int64 seeds for `tf.random.stateless_*`, one per batch it is zipped
    with: the same stream for the same `seed`, a new one for each pass over the data when
    `fresh_each_iteration`, and restored with the iterator from a checkpoint."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=fresh_each_iteration).batch(2)


# Offsets the crop's seed stream from the input masking's, which draws from `seed` itself.
_CROP_SEED_OFFSET = 7919


def _crop_texts(dataset, rate, min_tokens, budget, seed, deterministic):
    """Cuts each text of every batch of (ragged token ids, labels) to a random span with probability
    `rate` (`crop_spans`), from the first `budget` tokens, the ones the packed sequence holds.

    The draws come from `_batch_seeds`: fresh each epoch, the same for the same seed, and restored
    with the iterator on resume.
    """
    if not 0 < rate <= 1:
        raise ValueError(f"crop_rate={rate!r} invalid; need 0 <= rate <= 1")
    if min_tokens < 1:
        raise ValueError(f"crop_min_tokens={min_tokens!r} invalid; need at least 1")
    seeds = _batch_seeds(seed + _CROP_SEED_OFFSET, fresh_each_iteration=True)

    def crop(batch, batch_seed):
        (tokens,), labels = batch
        return (crop_spans(tokens[:, :budget], rate, min_tokens, batch_seed),), labels

    return tf.data.Dataset.zip((dataset, seeds)).map(crop, num_parallel_calls=AUTOTUNE,
                                                     deterministic=deterministic)


def crop_spans(tokens, rate, min_tokens, seed):
    """Each row of `tokens` (int32 RaggedTensor [B, None]) longer than `min_tokens` is, with
    probability `rate`, replaced by a contiguous span of it: its length uniform from `min_tokens` to
    the row's, its start uniform over the places it fits. Other rows are kept whole.

    Args:
        seed: [2] int tensor for `tf.random.stateless_uniform`.
    """
    lengths = tokens.row_lengths()
    draws = tf.random.stateless_uniform([3, tf.shape(lengths)[0]], seed=seed, dtype=tf.float32)
    chosen = (draws[0] < rate) & (lengths > min_tokens)
    choices = tf.cast(lengths - min_tokens + 1, tf.float32)
    span = tf.minimum(min_tokens + tf.cast(tf.floor(draws[1] * choices), tf.int64), lengths)
    span = tf.where(chosen, span, lengths)
    start = tf.minimum(tf.cast(tf.floor(draws[2] * tf.cast(lengths - span + 1, tf.float32)), tf.int64),
                       lengths - span)
    positions = tf.ragged.range(tokens.row_starts() + start, tokens.row_starts() + start + span)
    return tf.RaggedTensor.from_row_lengths(tf.gather(tokens.flat_values, positions.flat_values), span)


def _mask_inputs(dataset, rate, seed, special, deterministic):
    """Replaces each text token of every batch with [MASK] with probability `rate`.

    The draws come from `_batch_seeds`: fresh each epoch, the same for the same seed, and restored
    with the iterator on resume.
    """
    if not 0 < rate < 1:
        raise ValueError(f"input_mask_rate={rate!r} invalid; need 0 <= rate < 1")
    seeds = _batch_seeds(seed, fresh_each_iteration=True)
    structural = _structural_token_ids(special)

    def mask(batch, batch_seed):
        features, labels = batch
        token_ids = features["token_ids"]
        draw = tf.random.stateless_uniform(tf.shape(token_ids), seed=batch_seed)
        chosen = _text_tokens(token_ids, structural) & (draw < rate)
        features = dict(features, token_ids=tf.where(chosen, special[MASK_TOKEN], token_ids))
        return features, labels

    return tf.data.Dataset.zip((dataset, seeds)).map(mask, num_parallel_calls=AUTOTUNE,
                                                     deterministic=deterministic)


def _structural_token_ids(ids):
    """The ids of [PAD], [CLS] and [SEP] (from a {token: id} map), which no masking replaces."""
    return tf.constant([ids[PAD_TOKEN], ids[CLS_TOKEN], ids[SEP_TOKEN]], tf.int32)


def _text_tokens(token_ids, structural):
    """True at the positions of `token_ids` [B, L] that hold a text's own tokens: not one of
    `structural` ([PAD], [CLS], [SEP]; `_structural_token_ids`)."""
    return tf.logical_not(tf.reduce_any(token_ids[:, :, None] == structural[None, None, :], axis=-1))


def default_max_predictions(sequence_length, mask_rate=0.15):
    """ceil(mask_rate * sequence_length): 20 for L=128 at 15%, as in BERT."""
    return max(1, math.ceil(mask_rate * sequence_length))


class MaskedLMMasker:
    """Dynamic, seeded BERT masking of a batch of packed token ids.

    Selects `mask_rate` of the maskable tokens (never [PAD]/[CLS]/[SEP]) per sequence
    (stochastic rounding keeps the expected rate exact), at most `max_predictions`;
    replaces 80% with [MASK], 10% with a random non-special token, keeps 10%. With
    `whole_word`, `mask_rate` counts words, and every token of a selected word is masked
    (while `max_predictions` allows).

    Args:
        vocab: list[str]. Tokenizer vocabulary in id order.
        max_predictions: int. P, masked positions per sequence (padded with weight 0).
        mask_rate: float. Share of maskable tokens to predict. Defaults to 0.15.
        mask_token_rate: float. Share of selected tokens replaced by [MASK]. Defaults to 0.8.
        random_token_rate: float. Share replaced by a random token. Defaults to 0.1.
        whole_word: bool. Select all pieces of a word ("##" continuations) together.
            Defaults to False.
        segmented_words: bool. The token ids mark the words of a segmenter: a token that
            continues a word arrives as ~id (`segmentation.tokenize_words`); needs
            `whole_word`. Defaults to False.
    """

    def __init__(self, vocab, max_predictions, mask_rate=0.15, mask_token_rate=0.8,
                 random_token_rate=0.1, whole_word=False, segmented_words=False):
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"mask_rate={mask_rate} invalid; must be in (0, 1)")
        if mask_token_rate < 0 or random_token_rate < 0 or \
                mask_token_rate + random_token_rate > 1.0:
            raise ValueError(f"mask_token_rate={mask_token_rate}, random_token_rate="
                             f"{random_token_rate} invalid; each >= 0 and sum <= 1")
        _check_positive("max_predictions", max_predictions)
        vocab = list(vocab)
        self.ids = {token: vocab.index(token) for token in RESERVED_TOKENS}
        self.max_predictions = int(max_predictions)
        self.mask_rate = float(mask_rate)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        if segmented_words and not whole_word:
            raise ValueError("segmented_words=True needs whole_word=True: the segmenter's words "
                             "are what whole-word masking selects")
        self.whole_word = bool(whole_word)
        self.segmented_words = bool(segmented_words)
        special = set(self.ids.values())
        self.random_candidates = tf.constant(
            [i for i in range(len(vocab)) if i not in special], tf.int32)
        self.unselectable = _structural_token_ids(self.ids)
        self.is_continuation = tf.constant([t.startswith("##") for t in vocab], tf.bool)

    def _word_starts(self, token_ids):
        if not self.whole_word:
            return tf.ones_like(token_ids, tf.bool)
        return tf.logical_not(tf.gather(self.is_continuation, token_ids))

    def _selection_scores(self, token_ids, starts, seed):
        scores = tf.random.stateless_uniform(tf.shape(token_ids), seed)
        if self.whole_word:
            # Every piece of a word takes the score of the word's first piece, so the
            # pieces stay next to each other in the ranking.
            word_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
            batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
            segment = word_index + tf.range(batch)[:, None] * length
            word_scores = tf.math.unsorted_segment_max(
                tf.where(starts, scores, -1.0), segment, batch * length)
            scores = tf.gather(word_scores, segment)
        return scores

    def __call__(self, token_ids, seed):
        """Masks a batch.

        Args:
            token_ids: int32 [B, L]. Packed ids (with `segmented_words`, continuations as ~id).
            seed: int [2]. Stateless random seed for this batch.

        Returns:
            (masked token_ids [B, L], mask_positions int32 [B, P], mask_ids int32 [B, P],
            mask_weights float32 [B, P]).
        """
        seeds = tf.random.experimental.stateless_split(seed, 4)
        length = tf.shape(token_ids)[1]
        if self.segmented_words:
            token_ids, starts = decode_word_starts(token_ids)
        else:
            starts = self._word_starts(token_ids)
        maskable = _text_tokens(token_ids, self.unselectable)
        scores = tf.where(maskable, self._selection_scores(token_ids, starts, seeds[0]), -1.0)
        # Count words (= tokens unless whole_word); stochastic rounding keeps the
        # expected selected share exactly `mask_rate`.
        count = tf.reduce_sum(tf.cast(tf.logical_and(maskable, starts), tf.float32), axis=1)
        jitter = tf.random.stateless_uniform(tf.shape(count), seeds[1])
        num_words = tf.cast(tf.floor(self.mask_rate * count + jitter), tf.int32)
        k = tf.minimum(self.max_predictions, length)
        top_scores, top_positions = tf.math.top_k(scores, k=k)
        word_rank = tf.cumsum(tf.cast(tf.gather(starts, top_positions, batch_dims=1),
                                      tf.int32), axis=1)
        chosen = tf.logical_and(word_rank <= num_words[:, None], top_scores >= 0)
        positions = tf.sort(tf.where(chosen, top_positions, length), axis=1)
        pad_width = self.max_predictions - k
        positions = tf.pad(positions, [[0, 0], [0, pad_width]], constant_values=length)
        weights = positions < length
        positions = tf.where(weights, positions, 0)
        mask_ids = tf.where(weights, tf.gather(token_ids, positions, batch_dims=1), 0)

        decision = tf.random.stateless_uniform(tf.shape(positions), seeds[2])
        random_ids = tf.gather(self.random_candidates, tf.random.stateless_uniform(
            tf.shape(positions), seeds[3], minval=0,
            maxval=tf.shape(self.random_candidates)[0], dtype=tf.int32))
        replacement = tf.where(
            decision < self.mask_token_rate, self.ids[MASK_TOKEN],
            tf.where(decision < self.mask_token_rate + self.random_token_rate,
                     random_ids, mask_ids))
        # Unused slots point at position 0 ([CLS]) and write its own id back.
        replacement = tf.where(weights, replacement, token_ids[:, :1])
        batch_index = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None],
                                      tf.shape(positions))
        masked = tf.tensor_scatter_nd_update(
            token_ids, tf.stack([batch_index, positions], axis=-1), replacement)
        return masked, positions, mask_ids, tf.cast(weights, tf.float32)


def _pack_lines(tokens_batch, chunk_length):
    """Concatenates a batch of token lists and cuts it into rows of `chunk_length`."""
    flat = tokens_batch.flat_values
    total = tf.shape(flat)[0]
    full, rest = total // chunk_length, total % chunk_length
    lengths = tf.concat([tf.fill([full], chunk_length),
                         tf.reshape(rest, [1])[:tf.cast(rest > 0, tf.int32)]], axis=0)
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def _is_not_empty(tokens):
    return tf.size(tokens) > 0


def mlm_dataset(texts, tokenizer, sequence_length, batch_size, *, mask_rate=0.15,
                max_predictions=None, whole_word=False, word_segmenter="wordpiece", seed=42,
                shuffle=True, repeat=False, cache=True, deterministic=True, drop_remainder=False,
                pack_documents=True, lines_per_pack=256, mask_token_rate=0.8, random_token_rate=0.1,
                fresh_masks=True, dynamic_padding=False, length_buckets=None, shard=None,
                input_context=None):
    """Builds the masked-LM pretraining pipeline with dynamic masking.

    Lines are tokenized once and cached. Each epoch the lines are reshuffled (seeded);
    with `pack_documents` consecutive shuffled lines are concatenated and cut into
    `sequence_length - 2` token rows (short People's Daily sentences fill whole
    sequences, long lines are not truncated away); otherwise each line is one sequence,
    truncated. Each row gets [CLS] ... [SEP] and padding, then a fresh mask per epoch
    drawn from a seeded random stream (deterministic for a given seed). A held-out set
    takes `fresh_masks=False`: every pass masks the same tokens, so its evaluations
    are comparable across steps, phases and resumed runs.

    Args:
        texts: list[str]. Corpus lines.
        tokenizer: keras_hub BertTokenizer (see `make_tokenizer`).
        sequence_length: int. L including [CLS]/[SEP].
        batch_size: int. Global batch size (per-replica when `input_context` is given).
        mask_rate: float. Share of maskable tokens to predict. Defaults to 0.15.
        max_predictions: int | None. P. Defaults to ceil(mask_rate * L).
        whole_word: bool. Mask all tokens of a word together. Defaults to False.
        word_segmenter: str. With `whole_word`, what a word is: "wordpiece", a token and its
            "##" continuations; "jieba", a word of the jieba segmenter, for text without spaces
            between words (Chinese whole-word masking, `tfmodels/data/segmentation.py`).
            Defaults to "wordpiece".
        seed: int. Shuffle and masking seed. Defaults to 42.
        shuffle: bool. Reshuffle lines every epoch. Defaults to True.
        repeat: bool. Repeat forever. Defaults to False.
        cache: bool. Cache tokenized lines. Defaults to True.
        deterministic: bool. Deterministic element order. Defaults to True.
        drop_remainder: bool. Drop the last partial batch. Defaults to False.
        pack_documents: bool. Pack several lines into one sequence. Defaults to True.
        lines_per_pack: int. Lines concatenated per packing group. Defaults to 256.
        mask_token_rate: float. Selected tokens replaced by [MASK]. Defaults to 0.8.
        random_token_rate: float. Selected tokens replaced by a random token. Defaults to 0.1.
        fresh_masks: bool. Draw new masks on every pass over the data; False repeats the
            first pass's masks (with `shuffle=False`, the same batches). Defaults to True.
        dynamic_padding: bool. Without `pack_documents`, pad each batch only to its longest line
            (<= L) instead of L; packed rows fill the window, so packing ignores it. The masks
            are drawn over the batch's own length. Defaults to False.
        length_buckets: list[int] | None. Without `pack_documents`, bucket boundaries in packed
            tokens, e.g. [32, 64]: each batch takes lines of one bucket only and is padded to its
            longest (implies dynamic padding; it changes which lines share a batch, so keep it
            off for a held-out set). Packing ignores it. Defaults to None.
        shard: tuple(int, int) | None. Explicit (num_shards, index) sharding.
        input_context: tf.distribute.InputContext | None. Per-pipeline sharding.

    Returns:
        tf.data.Dataset of ({token_ids, padding_mask, segment_ids} int32 [B, L],
        mask_positions int32 [B, P]}, mask_ids int32 [B, P], mask_weights float32 [B, P]).
    """
    _check_positive("sequence_length", sequence_length)
    _check_positive("batch_size", batch_size)
    if sequence_length < 3:
        raise ValueError(f"sequence_length={sequence_length} too small; need >= 3 "
                         f"([CLS] token [SEP])")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("texts is empty; a masked-LM dataset needs at least one line")
    max_predictions = max_predictions or default_max_predictions(sequence_length, mask_rate)
    segmented = segments_text(word_segmenter)
    masker = MaskedLMMasker(tokenizer.get_vocabulary(), max_predictions, mask_rate,
                            mask_token_rate, random_token_rate, whole_word, segmented)
    special = _special_ids(tokenizer)
    body_length = sequence_length - 2
    if segmented:
        texts = segment_words(texts, word_segmenter)
    lines = _tokenized_segments([texts], tokenizer, None if pack_documents else body_length,
                                deterministic, tokenize_batch=functools.partial(
                                    tokenize_words, tokenizer) if segmented else None)
    lines = lines.filter(_is_not_empty)
    lines, batch_size = _shard(lines, shard, input_context, batch_size)
    if cache:
        lines = lines.cache()
    if shuffle:
        lines = lines.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        lines = lines.repeat()
    if pack_documents:
        lines = lines.ragged_batch(lines_per_pack).map(
            lambda batch: _pack_lines(batch, body_length),
            num_parallel_calls=AUTOTUNE, deterministic=deterministic).unbatch()
    boundaries = (_check_length_buckets(length_buckets, sequence_length)
                  if length_buckets and not pack_documents else None)
    if boundaries:
        batches = _batch_by_length(lines, boundaries, batch_size, drop_remainder,
                                   lambda tokens: _packed_length((tokens,)))
    else:
        batches = lines.ragged_batch(batch_size, drop_remainder=drop_remainder)
    seeds = _batch_seeds(seed, fresh_each_iteration=fresh_masks)
    trim_padding = (dynamic_padding or bool(boundaries)) and not pack_documents

    def to_mlm(tokens_batch, batch_seed):
        if isinstance(tokens_batch, tuple):  # unpacked lines keep the 1-segment tuple
            tokens_batch = tokens_batch[0]
        features = _pack((tokens_batch,), sequence_length, special)
        if trim_padding:
            features = _trim_to_longest(features)
        masked, positions, mask_ids, weights = masker(features["token_ids"], batch_seed)
        features["token_ids"] = masked
        features["mask_positions"] = positions
        return features, mask_ids, weights

    dataset = tf.data.Dataset.zip((batches, seeds)).map(
        to_mlm, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return _apply_options(dataset.prefetch(AUTOTUNE), deterministic)


def electra_dataset(mlm_batches):
    """Masked-LM batches with their targets also among the features, as ELECTRA's model takes them.

    The ELECTRA pretrainer builds the discriminator's input from the original ids at the masked
    positions, so `mask_ids` and `mask_weights` are added to the features; labels and sample
    weights stay as they are (the generator's loss reads them).

    Args:
        mlm_batches: tf.data.Dataset. Batches of `mlm_dataset`.

    Returns:
        tf.data.Dataset of (features + {mask_ids int32 [B, P], mask_weights float32 [B, P]},
        mask_ids, mask_weights).
    """
    def with_targets(features, mask_ids, mask_weights):
        return dict(features, mask_ids=mask_ids, mask_weights=mask_weights), mask_ids, mask_weights
    return mlm_batches.map(with_targets, num_parallel_calls=AUTOTUNE, deterministic=True)


def features_dataset(features, labels, batch_size, *, shuffle=True, seed=42, repeat=False,
                     cache=True, deterministic=True, drop_remainder=False, normalizer=None,
                     shard=None, input_context=None):
    """Builds the MLP pipeline yielding ({"features": float32 [B, ...]}, labels int32 [B]).

    Args:
        features: np.ndarray [N, ...]. Numeric features.
        labels: np.ndarray [N]. Integer labels.
        batch_size: int. Global batch size (per-replica when `input_context` is given).
        shuffle: bool. Seeded reshuffle every epoch. Defaults to True.
        seed: int. Shuffle seed. Defaults to 42.
        repeat: bool. Repeat forever. Defaults to False.
        cache: bool. Cache the (normalized) examples. Defaults to True.
        deterministic: bool. Deterministic element order. Defaults to True.
        drop_remainder: bool. Drop the last partial batch. Defaults to False.
        normalizer: Normalizer | None. Applied to features before batching (the model
            may instead apply it in-graph; do not do both).
        shard: tuple(int, int) | None. Explicit (num_shards, index) sharding.
        input_context: tf.distribute.InputContext | None. Per-pipeline sharding.
    """
    _check_positive("batch_size", batch_size)
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int32).reshape([-1])
    if len(features) == 0 or len(features) != len(labels):
        raise ValueError(f"features ({len(features)} rows) and labels ({len(labels)}) must "
                         f"be non-empty and of equal length")
    if normalizer is not None:
        features = normalizer(features)
    dataset = tf.data.Dataset.from_tensor_slices(({"features": features}, labels))
    dataset, batch_size = _shard(dataset, shard, input_context, batch_size)
    dataset = _cache_shuffle_repeat(dataset, cache, shuffle, len(labels), seed, repeat)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return _apply_options(dataset.prefetch(AUTOTUNE), deterministic)
