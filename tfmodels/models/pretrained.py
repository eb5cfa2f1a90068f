"""Load a pretrained BERT encoder from a local path, and save encoders in that format.

Formats understood by `load_encoder` (all offline):

1. A keras-hub preset directory: config.json (a keras-hub BertBackbone config)
   + model.weights.h5, optionally tokenizer.json + assets/tokenizer/vocabulary.txt.
   This is also this package's own format, written by `save_encoder`, which adds
   a top-level vocab.txt.
2. A Hugging Face BERT directory: config.json with "model_type": "bert" +
   model.safetensors (or a sharded index, or pytorch_model.bin when torch is
   installed) + vocab.txt, e.g. a downloaded bert-base-chinese.
3. A `.keras` file of one of this package's models (or a directory holding
   exactly one), whose BertBackbone is extracted.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import keras
import keras_hub

from tfmodels.data.vocab import case_folded
from tfmodels.models.bert import find_encoder

VOCAB_FILE = "vocab.txt"
PRESET_VOCAB_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")
CONFIG_FILE = "config.json"
KERAS_WEIGHTS_FILE = "model.weights.h5"
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
LOOKED_FOR = ("a keras-hub preset dir (config.json + model.weights.h5)",
              "a Hugging Face BERT dir (config.json with model_type 'bert' + "
              "model.safetensors or pytorch_model.bin + vocab.txt)",
              "a .keras model file (or a dir holding one)")


@dataclasses.dataclass
class LoadedEncoder:
    """A loaded encoder and what is needed to tokenize for it.

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder with loaded weights.
        vocab_path: str or None. WordPiece vocabulary file, if the source has one.
        lowercase: bool. Whether the vocabulary expects lowercased text.
        source_format: str. "keras_hub_preset", "huggingface" or "keras_model".
    """

    encoder: keras_hub.models.BertBackbone
    vocab_path: str | None
    lowercase: bool
    source_format: str


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read JSON ({error})") from error


def _first_existing(directory: Path, names) -> str | None:
    for name in names:
        if (directory / name).is_file():
            return str(directory / name)
    return None


def _check_bert(encoder, path) -> keras_hub.models.BertBackbone:
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ValueError(f"{path}: holds a {type(encoder).__name__}; expected a BertBackbone")
    return encoder


def _load_keras_hub_preset(directory: Path, dtype) -> LoadedEncoder:
    if not (directory / KERAS_WEIGHTS_FILE).is_file():
        raise ValueError(f"{directory}: keras-hub preset config.json found but "
                         f"{KERAS_WEIGHTS_FILE} is missing")
    kwargs = {"dtype": dtype} if dtype is not None else {}
    encoder = _check_bert(keras_hub.models.Backbone.from_preset(str(directory), **kwargs),
                          directory)
    lowercase = False
    if (directory / "tokenizer.json").is_file():
        lowercase = bool(_read_json(directory / "tokenizer.json")
                         .get("config", {}).get("lowercase", False))
    return LoadedEncoder(encoder, _first_existing(directory, (VOCAB_FILE, PRESET_VOCAB_FILE)),
                         lowercase, "keras_hub_preset")


def _safetensors_from_torch_bin(directory: Path, target: Path) -> None:
    try:
        import torch
    except ImportError as error:
        raise ValueError(f"{directory}: only pytorch_model.bin found; loading it needs "
                         "torch (pip install torch) or a model.safetensors file") from error
    from safetensors.numpy import save_file

    state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    save_file({key: value.float().numpy() for key, value in state.items()},
              str(target / "model.safetensors"))


def _load_huggingface(directory: Path, config: dict, dtype) -> LoadedEncoder:
    model_type = config.get("model_type")
    if model_type != "bert":
        raise ValueError(f"{directory / CONFIG_FILE}: model_type={model_type!r} unsupported; "
                         "expected 'bert'")
    weights = _first_existing(directory, HF_WEIGHT_FILES)
    if weights is None:
        raise ValueError(f"{directory}: Hugging Face config.json found but no weights; "
                         f"looked for {', '.join(HF_WEIGHT_FILES)}")
    kwargs = {"dtype": dtype} if dtype is not None else {}
    if weights.endswith(".bin"):
        with tempfile.TemporaryDirectory() as converted:
            shutil.copy(directory / CONFIG_FILE, converted)
            _safetensors_from_torch_bin(directory, Path(converted))
            encoder = keras_hub.models.BertBackbone.from_preset(converted, **kwargs)
    else:
        encoder = keras_hub.models.BertBackbone.from_preset(str(directory), **kwargs)
    tokenizer_config = {}
    if (directory / "tokenizer_config.json").is_file():
        tokenizer_config = _read_json(directory / "tokenizer_config.json")
    lowercase = bool(tokenizer_config.get("do_lower_case", True))  # the BertTokenizer default
    vocab_path = _first_existing(directory, (VOCAB_FILE,))
    difference = lowercasing_difference(vocab_path, tokenizer_config) if lowercase and vocab_path else None
    if difference:
        warnings.warn(f"{directory / 'tokenizer_config.json'}: do_lower_case is true; {difference}",
                      stacklevel=3)
    return LoadedEncoder(encoder, vocab_path, lowercase, "huggingface")


def lowercasing_difference(vocab_path: str, tokenizer_config: dict) -> str | None:
    """How keras-hub's lowercasing, which fine-tuning uses, differs from transformers' for this
    vocabulary, or None when it does not.

    keras-hub folds text with NFKC case folding and keeps accents; transformers' BertTokenizer
    lowercases without NFKC and, unless `strip_accents` is false, strips accents. So a vocabulary
    token that NFKC changes ("，", full-width forms) is never produced here, and accented text gets
    other ids than transformers gives it.

    Args:
        vocab_path: str. The checkpoint's vocab.txt.
        tokenizer_config: dict. Its tokenizer_config.json.
    """
    with open(vocab_path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    unreachable = [t for t in tokens if not (t.startswith("[") and t.endswith("]"))
                   and case_folded(t.removeprefix("##")) != t.removeprefix("##")]
    notes = []
    if unreachable:
        examples = ", ".join(repr(t) for t in unreachable[:5])
        notes.append(f"keras-hub's NFKC case folding never produces {len(unreachable)} of its "
                     f"{len(tokens)} vocabulary tokens ({examples}): text holding them gets the ids of "
                     "their folded forms, which transformers' BertTokenizer does not do")
    if tokenizer_config.get("strip_accents", None) is not False:
        notes.append("accents are kept, where transformers' BertTokenizer strips them "
                     "(strip_accents is not false)")
    return "; ".join(notes) or None


def _load_keras_model(model_path: Path) -> LoadedEncoder:
    model = keras.saving.load_model(str(model_path), safe_mode=True)
    encoder = find_encoder(model)
    directory = model_path.parent
    lowercase = False
    if (directory / "tokenizer.json").is_file():
        lowercase = bool(_read_json(directory / "tokenizer.json")
                         .get("config", {}).get("lowercase", False))
    return LoadedEncoder(encoder, _first_existing(directory, (VOCAB_FILE,)), lowercase,
                         "keras_model")


def load_encoder(path, dtype=None) -> LoadedEncoder:
    """Loads a pretrained BERT encoder from a local path (no downloads).

    Args:
        path: str or Path. A keras-hub preset dir, a Hugging Face BERT dir, a
            `.keras` model file, or a dir holding exactly one `.keras` file.
        dtype: str or DTypePolicy. Dtype policy of the loaded encoder (presets
            and Hugging Face dirs only). Defaults to the global policy.

    Returns:
        A `LoadedEncoder(encoder, vocab_path, lowercase, source_format)`.

    Raises:
        ValueError: the path holds none of the formats (the message lists what
            was looked for) or a format is incomplete.

    Example:
        >>> loaded = load_encoder("downloads/bert-base-chinese")
        >>> loaded.encoder.num_layers, loaded.vocab_path
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return _load_keras_model(path)
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            config = _read_json(path / CONFIG_FILE)
            if "model_type" in config:
                return _load_huggingface(path, config, dtype)
            if "class_name" in config or "registered_name" in config:
                return _load_keras_hub_preset(path, dtype)
        keras_files = sorted(path.glob("*.keras"))
        if len(keras_files) == 1:
            return _load_keras_model(keras_files[0])
    raise ValueError(f"{path}: no pretrained encoder found; looked for "
                     f"{'; '.join(LOOKED_FOR)}")


def _vocabulary_lines(tokenizer_or_vocab_path) -> list[str]:
    if isinstance(tokenizer_or_vocab_path, (str, os.PathLike)):
        vocab_path = Path(tokenizer_or_vocab_path)
        if not vocab_path.is_file():
            raise ValueError(f"tokenizer_or_vocab_path={str(vocab_path)!r} is not a file; "
                             "expected a vocab.txt or a tokenizer with get_vocabulary()")
        return vocab_path.read_text(encoding="utf-8").splitlines()
    if hasattr(tokenizer_or_vocab_path, "get_vocabulary"):
        return [str(token) for token in tokenizer_or_vocab_path.get_vocabulary()]
    raise ValueError(f"tokenizer_or_vocab_path={type(tokenizer_or_vocab_path).__name__} is "
                     "invalid; expected a vocab.txt path or a tokenizer with get_vocabulary()")


def save_encoder(encoder: keras_hub.models.BertBackbone, tokenizer_or_vocab_path, directory,
                 lowercase: bool | None = None) -> str:
    """Saves an encoder as a keras-hub preset dir plus a top-level vocab.txt.

    The result loads with `load_encoder` and with
    `keras_hub.models.BertBackbone.from_preset(directory)`.

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder (e.g. `find_encoder(model)`).
        tokenizer_or_vocab_path: a vocab.txt path (one token per line) or a
            tokenizer with `get_vocabulary()` (e.g. keras_hub BertTokenizer).
        directory: str or Path. Output directory (created if missing).
        lowercase: bool. Whether the vocabulary expects lowercased text.
            Defaults to the tokenizer's `lowercase` attribute, else False.

    Returns:
        The directory path as a string.
    """
    if not isinstance(encoder, keras_hub.models.BertBackbone):
        raise ValueError(f"encoder={type(encoder).__name__} is invalid; expected a "
                         "keras_hub.models.BertBackbone")
    vocabulary = _vocabulary_lines(tokenizer_or_vocab_path)
    if len(vocabulary) != encoder.vocabulary_size:
        raise ValueError(f"vocabulary has {len(vocabulary)} tokens but the encoder's "
                         f"vocabulary_size is {encoder.vocabulary_size}; they must match")
    if lowercase is None:
        lowercase = bool(getattr(tokenizer_or_vocab_path, "lowercase", False))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoder.save_to_preset(str(directory))
    vocab_file = directory / VOCAB_FILE
    vocab_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    try:
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=str(vocab_file),
                                                   lowercase=lowercase)
    except ValueError as error:
        raise ValueError(f"{vocab_file}: not a BERT vocabulary ({error})") from error
    tokenizer.save_to_preset(str(directory))
    return str(directory)


def check_sequence_length(encoder: keras_hub.models.BertBackbone, sequence_length: int) -> None:
    """Raises ValueError if `sequence_length` does not fit the encoder's position table.

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder.
        sequence_length: int. Requested sequence length.
    """
    maximum = encoder.max_sequence_length
    if (isinstance(sequence_length, bool) or not isinstance(sequence_length, int)
            or not 1 <= sequence_length <= maximum):
        raise ValueError(f"sequence_length={sequence_length!r} is invalid; this encoder "
                         f"allows 1..{maximum} (its max_sequence_length)")
