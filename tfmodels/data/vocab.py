"""WordPiece vocabulary: build from a corpus, save/load as a BERT/Hugging Face `vocab.txt`."""
import os
import time
import unicodedata

import numpy as np

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = RESERVED_TOKENS


def case_folded(text: str) -> str:
    """`text` as keras-hub's lowercasing folds it: NFKC, then lowercase ("，" → ",", "Ａ" → "a").

    keras-hub uses ICU's NFKC case folding; this differs from it only for the few characters whose
    case folding is not their lowercase ("ß").
    """
    return unicodedata.normalize("NFKC", text).lower()


def count_pretokenized_words(texts, lowercase=True, batch_size=2048):
    """Counts words after BERT pre-tokenization (whitespace/punctuation split, CJK one per char).

    Uses keras-hub's `pretokenize`, the same split the WordPiece tokenizer applies,
    so the learned pieces match what the tokenizer sees.

    Args:
        texts: list[str]. Corpus lines.
        lowercase: bool. Lowercase before splitting. Defaults to True.
        batch_size: int. Lines per pre-tokenization call. Defaults to 2048.

    Returns:
        collections.Counter {word: count}.
    """
    import tensorflow as tf
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
    dataset = dataset.batch(batch_size).map(
        lambda batch: pretokenize(batch, lowercase, False, True, True).flat_values,
        num_parallel_calls=tf.data.AUTOTUNE)
    return learner.count_words(dataset.as_numpy_iterator())


def build_wordpiece_vocab(texts, vocab_size, lowercase=True, output_path=None,
                          min_count=2, max_cjk_fraction=0.9):
    """Learns a WordPiece vocabulary (BERT-Chinese style: every CJK character its own word).

    Reserved tokens come first with fixed ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.

    Args:
        texts: list[str]. Corpus lines.
        vocab_size: int. Maximum vocabulary size including reserved tokens.
        lowercase: bool. Lowercase the corpus (use the same setting in the tokenizer).
            Defaults to True.
        output_path: str | None. Where to write `vocab.txt` (one token per line).
        min_count: int. Words and characters seen fewer times are left out. Defaults to 2.
        max_cjk_fraction: float. At most this share of the non-reserved slots goes to
            single CJK characters; the rest is learned WordPiece over other words.
            Defaults to 0.9.

    Returns:
        list[str], the vocabulary in id order.

    Example:
        >>> vocab = build_wordpiece_vocab(["我喜欢这本书", "这本书不好"] * 10, 50)
        >>> vocab[:5]
        ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    """
    if int(vocab_size) <= len(RESERVED_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} too small; must be > "
                         f"{len(RESERVED_TOKENS)} (the reserved tokens)")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; a vocabulary needs at least one line of text")
    counts = count_pretokenized_words(texts, lowercase=lowercase)
    # vocab.txt is line based: a token with whitespace can't be stored (or produced).
    counts = {w: c for w, c in counts.items()
              if w and w.isprintable() and not any(ch.isspace() for ch in w)}
    cjk_counts = {w: c for w, c in counts.items() if len(w) == 1 and is_cjk_char(w)}
    other_counts = {w: c for w, c in counts.items() if w not in cjk_counts}
    budget = int(vocab_size) - len(RESERVED_TOKENS)
    # CJK characters are always split one per token, so they need no "##" pieces and
    # no WordPiece learning: keep the most frequent ones directly.
    frequent_cjk = sorted((w for w, c in cjk_counts.items() if c >= min_count),
                          key=lambda w: (-cjk_counts[w], w))
    cjk_tokens = frequent_cjk[:int(budget * max_cjk_fraction)]
    other_tokens = _learn_wordpieces(other_counts, budget - len(cjk_tokens), min_count)
    vocab = list(RESERVED_TOKENS) + cjk_tokens + other_tokens
    vocab = _drop_duplicates(vocab)[:int(vocab_size)]
    if output_path is not None:
        save_vocab(vocab, output_path)
    return vocab


def is_cjk_char(char):
    """True for a CJK ideograph (the ranges BERT and keras-hub split one per token)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _learn_wordpieces(word_counts, budget, min_count):
    """Learns up to `budget` WordPiece tokens (with "##" pieces) over non-CJK words."""
    from tensorflow_text.tools.wordpiece_vocab import (
        wordpiece_tokenizer_learner_lib as learner)

    if budget <= 0 or not word_counts:
        return []
    learned = learner.learn(word_counts, vocab_size=budget + len(RESERVED_TOKENS),
                            reserved_tokens=list(RESERVED_TOKENS),
                            lower_thresh=int(min_count), include_joiner_token=True,
                            joiner="##")
    return [t for t in learned if t not in RESERVED_TOKENS][:budget]


def _drop_duplicates(tokens):
    seen = set()
    return [t for t in tokens if not (t in seen or seen.add(t))]


def save_vocab(vocab, path):
    """Writes a vocabulary as `vocab.txt`, one token per line (BERT/Hugging Face format).

    Args:
        vocab: list[str]. Tokens in id order.
        path: str. File path, or a directory to write `vocab.txt` into.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "vocab.txt")
    bad = [t for t in vocab if not t or "\n" in t or t != t.strip()]
    if bad:
        raise ValueError(f"{path}: tokens {bad[:3]!r} are empty or contain whitespace at "
                         f"the ends/newlines; a vocab.txt line must be one non-empty token")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    os.replace(tmp, path)  # never a half-written vocab.txt
    return path


def load_vocab(path):
    """Reads a `vocab.txt` (one token per line) and checks the reserved tokens.

    Any BERT/Hugging Face vocab.txt is accepted as long as it holds [PAD], [UNK],
    [CLS], [SEP] and [MASK] (in any position).

    Args:
        path: str. File path, or a directory holding `vocab.txt`.

    Returns:
        list[str], tokens in id order.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "vocab.txt")
    if not os.path.isfile(path):
        raise ValueError(f"vocab path {path!r} does not exist (allowed: a vocab.txt file "
                         f"or a directory holding one)")
    with open(path, encoding="utf-8-sig") as f:
        vocab = [line.rstrip("\r\n") for line in f]
    while vocab and not vocab[-1]:
        vocab.pop()
    return validate_vocab(vocab, source=path)


def validate_vocab(vocab, source="vocabulary"):
    """Checks that `vocab` holds every reserved token and no duplicates.

    Args:
        vocab: list[str]. Tokens in id order.
        source: str. Name used in error messages (file path).
    """
    vocab = list(vocab)
    missing = [t for t in RESERVED_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"{source}: reserved tokens {' '.join(missing)} missing "
                         f"(required: {' '.join(RESERVED_TOKENS)})")
    if len(set(vocab)) != len(vocab):
        seen, duplicates = set(), []
        for line, token in enumerate(vocab, start=1):
            if token in seen:
                duplicates.append(f"{token!r} at line {line}")
            seen.add(token)
        raise ValueError(f"{source}: duplicate tokens {', '.join(duplicates[:3])} "
                         f"(allowed: each token once)")
    return vocab


def unknown_token_rate(texts, tokenizer, batch_size=1024):
    """Returns the fraction of produced tokens that are [UNK].

    Args:
        texts: list[str]. Texts to tokenize.
        tokenizer: keras_hub tokenizer with `vocabulary` and `token_to_id`.
        batch_size: int. Texts per tokenizer call. Defaults to 1024.
    """
    unk_id = tokenizer.token_to_id(UNK_TOKEN)
    import tensorflow as tf

    total = unknown = 0
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(tf.constant(texts[start:start + batch_size], tf.string))
        flat = _flatten_ids(ids)
        total += flat.size
        unknown += int(np.sum(flat == unk_id))
    return unknown / total if total else 0.0


def _flatten_ids(ids):
    """Flattens tokenizer output (RaggedTensor, Tensor or nested lists) to a 1-D array."""
    if hasattr(ids, "flat_values"):
        return np.asarray(ids.flat_values).reshape([-1])
    if isinstance(ids, (list, tuple)):
        parts = [np.asarray(row, dtype=np.int64).reshape([-1]) for row in ids]
        return np.concatenate(parts) if parts else np.zeros([0], np.int64)
    return np.asarray(ids).reshape([-1])


def timed_build(texts, vocab_size, **kwargs):
    """Builds a vocabulary and returns (vocab, seconds) for reports."""
    start = time.perf_counter()
    vocab = build_wordpiece_vocab(texts, vocab_size, **kwargs)
    return vocab, time.perf_counter() - start
