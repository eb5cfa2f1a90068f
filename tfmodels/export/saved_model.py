"""SavedModel export for TensorFlow Serving: signatures, versioned layout, verification.

Layout: `<export_base>/<model_name>/<version>/` where `version` is an integer, one more than the
highest version already there (1 for the first export); an existing version is never overwritten.
Each export is written into `<export_base>/<model_name>/.tmp-*` (TensorFlow Serving only loads
directories named by an integer), verified, then renamed into place with `os.rename`, so a crash
or a failed verification leaves no version directory; the temporary directory is removed on
failure.

Signatures of a text classifier:
  - `serving_default`: `text` tf.string [batch] (and `text_pair` for sentence-pair models) →
    `probabilities` float32 [batch, classes], `class_ids` int64 [batch], `class_names` tf.string
    [batch]. Tokenization runs inside the graph (BERT WordPiece on the exported vocabulary).
    An empty string becomes `[CLS] [SEP]` and still gets valid probabilities; a text longer than
    `sequence_length` is truncated to `sequence_length` tokens including `[CLS]`/`[SEP]` as in
    training: its first tokens, or its first and last ones with `truncation="head_tail"` (pairs
    are truncated round-robin). Inputs must be valid UTF-8.
  - `predict_token_ids`: `token_ids`, `padding_mask`, `segment_ids` int32 [batch, length] →
    the same three outputs.
MLP: `serving_default`: `features` float32 [batch, ...] → the same three outputs, with the
training normalization `(x - mean) / std` applied inside the graph.
Encoder: `serving_default`: token inputs → `sequence_output` float32 [batch, length, hidden] and
`pooled_output` float32 [batch, hidden].

Verification reloads the export in a fresh Python process that imports only TensorFlow and
tensorflow_text (`verify_worker.py`), runs held-out inputs through `serving_default` and compares
the float outputs with the in-memory model: max abs difference ≤ 1e-5 for float32 models and
≤ 1e-2 for models computing in bfloat16/float16. `assets.extra/tfmodels_export.json` records the
custom ops the servable needs, the signatures, class names, tokenizer settings, versions and the
verification result.

Loading an export in Python needs `import tensorflow_text` first (`load_servable` does it).
"""
import dataclasses
import datetime
import errno
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
import keras

from tfmodels.data.truncation import resolve_head_tokens, text_token_budget, truncate_text_tokens
from tfmodels.export import verify_worker

METADATA_FILENAME = "tfmodels_export.json"
WARMUP_FILENAME = "tf_serving_warmup_requests"
EXTRA_ASSETS_DIR = "assets.extra"
TEMP_PREFIX = ".tmp-"
FLOAT32_ATOL = 1e-5
LOW_PRECISION_ATOL = 1e-2
SERVING_SIGNATURE = "serving_default"
TOKEN_IDS_SIGNATURE = "predict_token_ids"
TOKEN_INPUT_NAMES = ("token_ids", "padding_mask", "segment_ids")
VERIFY_TIMEOUT_S = 600
_WORKER_PATH = os.path.abspath(verify_worker.__file__)


class ExportError(ValueError):
    """An export argument or an export directory is invalid."""


class ExportVerificationError(ExportError):
    """The reloaded SavedModel disagrees with the in-memory model, or cannot be run."""


@dataclasses.dataclass
class _ExportPlan:
    """Everything needed to write, verify and describe one export."""
    archive: keras.export.ExportArchive
    endpoints: dict
    verify_inputs: dict
    reference_outputs: dict
    atol: float
    metadata: dict
    extra_files: dict = dataclasses.field(default_factory=dict)
    # Warmup inputs of signatures other than serving_default (which uses verify_inputs).
    extra_warmup_inputs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Servable:
    """A loaded export: the SavedModel object, its directory and its recorded metadata."""
    path: str
    loaded: object
    metadata: dict

    @property
    def kind(self):
        """Returns "text_classifier", "mlp" or "encoder" (from metadata, else from input names)."""
        if self.metadata.get("task"):
            return self.metadata["task"]
        inputs = self.input_names()
        if "text" in inputs:
            return "text_classifier"
        if "features" in inputs:
            return "mlp"
        return "encoder"

    def signature(self, name=SERVING_SIGNATURE):
        """Returns the concrete function of a signature.

        Args:
            name: str. Signature name. Defaults to "serving_default".
        """
        if name not in self.loaded.signatures:
            raise ExportError(f"signature {name!r} not in {self.path}; choose one of "
                              f"{', '.join(sorted(self.loaded.signatures))}")
        return self.loaded.signatures[name]

    def input_names(self, name=SERVING_SIGNATURE):
        """Returns the sorted input names of a signature.

        Args:
            name: str. Signature name. Defaults to "serving_default".
        """
        _, specs = self.signature(name).structured_input_signature
        return sorted(specs)


# ---------------------------------------------------------------------------------------------
# Public export functions


def export_text_classifier(model, *, vocab_path, sequence_length, lowercase, class_names,
                           export_base, model_name, pair=False, verify_texts=None,
                           verify_text_pairs=None, verify_atol=None, verify=True, truncation="head",
                           head_tokens=None):
    """Exports a text classifier with a raw-string signature and a token-id signature.

    Args:
        model: keras.Model. Takes {"token_ids", "padding_mask", "segment_ids"} int32 [B, L] and
            returns float32 logits [B, C].
        vocab_path: str. WordPiece vocab.txt with [PAD] [UNK] [CLS] [SEP] [MASK].
        sequence_length: int. Packed length, including [CLS] and [SEP].
        lowercase: bool. Lowercase (and strip accents) before WordPiece, as in training.
        class_names: list of str. One name per logit, in logit order.
        export_base: str. Directory holding one sub-directory per model name.
        model_name: str. Name TensorFlow Serving serves the model under.
        pair: bool. Sentence-pair model: `serving_default` takes `text` and `text_pair`.
            Defaults to False.
        verify_texts: list of str (or of (text, text_pair) for pairs). Held-out inputs for the
            verification. Defaults to an empty string, a short and an over-long text built
            from the vocabulary.
        verify_text_pairs: list of str. Second texts for pair models, parallel to verify_texts
            (instead of tuples). Defaults to None.
        verify_atol: float. Max abs difference of probabilities allowed. Defaults to 1e-5 for
            float32 models and 1e-2 for bfloat16/float16 ones.
        verify: bool. Reload in a fresh process and compare. Defaults to True.
        truncation: str. Which tokens of a too-long text are kept, as in training
            (`tfmodels.data.truncation`): "head" or "head_tail" (single texts). Defaults to "head".
        head_tokens: int | None. With "head_tail": tokens kept from the start; None keeps a
            quarter of sequence_length - 2. Defaults to None.

    Returns:
        str. The new version directory.

    Example:
        >>> path = export_text_classifier(clf, vocab_path="vocab.txt", sequence_length=128,
        ...     lowercase=True, class_names=["neg", "pos"], export_base="exports",
        ...     model_name="sentiment")  # exports/sentiment/1
    """
    _check_name("model_name", model_name)
    class_names = _check_class_names(class_names, model)
    tokenizer, packer, truncate = _text_preprocessing(vocab_path, lowercase, sequence_length, pair)
    try:
        head = resolve_head_tokens(truncation, sequence_length, head_tokens, text_pairs=pair)
    except ValueError as error:
        raise ExportError(str(error)) from None

    def tokenize(text, text_pair=None):
        if text_pair is not None:
            segments = (tokenizer(text), tokenizer(text_pair))
        elif head is None:
            segments = (tokenizer(text),)
        else:
            segments = (truncate_text_tokens(tokenizer(text), sequence_length, truncation, head),)
        token_ids, segment_ids = packer(segments)
        return {"token_ids": tf.cast(token_ids, tf.int32),
                "padding_mask": tf.cast(token_ids != tokenizer.pad_token_id, tf.int32),
                "segment_ids": tf.cast(segment_ids, tf.int32)}

    archive = keras.export.ExportArchive()
    archive.track(model)  # the tokenizer and packer hold no variables: constants in the graph
    endpoints, serve_text = _text_endpoints(archive, model, tokenize, tf.constant(class_names), pair)
    if verify_text_pairs is not None:
        if not pair or verify_texts is None or len(verify_text_pairs) != len(verify_texts):
            raise ExportError("verify_text_pairs needs pair=True and one entry per verify_texts "
                              f"item; got {len(verify_text_pairs)} pairs, pair={pair}")
        verify_texts = list(zip(verify_texts, verify_text_pairs))
    verify_inputs = _text_verify_inputs(verify_texts, pair, tokenizer, sequence_length)
    reference = _to_numpy(serve_text(**{k: tf.constant(v) for k, v in verify_inputs.items()}))
    with open(vocab_path, encoding="utf-8") as f:
        vocab_text = f.read()
    metadata = _text_metadata(class_names, sequence_length, pair, tokenizer, lowercase,
                              _truncation_note(truncate, head, sequence_length))
    token_inputs = _to_numpy(tokenize(*(tf.constant(verify_inputs[k]) for k in sorted(verify_inputs))))
    plan = _ExportPlan(archive, endpoints, verify_inputs, reference,
                       resolve_atol(model, verify_atol), metadata,
                       extra_files={"vocab.txt": vocab_text},
                       extra_warmup_inputs={TOKEN_IDS_SIGNATURE: token_inputs})
    return _publish(plan, export_base, model_name, model, verify)


def _text_preprocessing(vocab_path, lowercase, sequence_length, pair):
    """The export's WordPiece tokenizer and [CLS]/[SEP] packer, and the packer's truncation."""
    import keras_hub  # deferred: only text exports need it

    if not isinstance(sequence_length, int) or sequence_length < 2:
        raise ExportError(f"sequence_length={sequence_length!r} invalid; use an int >= 2 "
                          "(room for [CLS] and [SEP])")
    if not os.path.isfile(vocab_path):
        raise ExportError(f"vocab_path {vocab_path!r} is not a file; pass the vocab.txt used "
                          "in training")
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocab_path, lowercase=lowercase,
                                                   name="tokenizer")
    # One segment truncates the same either way; "waterfall" avoids the TFText>RoundRobinTrim
    # op, which tensorflow-text links into its ops_lib only from 2.13: TF Serving 2.12-2.19 embed
    # tensorflow-text 2.12.1, so only TF Serving >= 2.20 serves pair exports. Pairs keep
    # round-robin, as keras-hub preprocessors use in training.
    truncate = "round_robin" if pair else "waterfall"
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=sequence_length, start_value=tokenizer.cls_token_id,
        end_value=tokenizer.sep_token_id, pad_value=tokenizer.pad_token_id, truncate=truncate,
        name="packer")
    return tokenizer, packer, truncate


def _text_endpoints(archive, model, tokenize, names_tensor, pair):
    """Adds the raw-text and token-id signatures; returns them and the raw-text function."""

    def classify(features):
        return _classification_outputs(model(features, training=False), names_tensor)

    if pair:
        def serve_text(text, text_pair):
            return classify(tokenize(text, text_pair))
        serving_specs = [tf.TensorSpec([None], tf.string, name="text"),
                         tf.TensorSpec([None], tf.string, name="text_pair")]
    else:
        def serve_text(text):
            return classify(tokenize(text))
        serving_specs = [tf.TensorSpec([None], tf.string, name="text")]

    def serve_token_ids(token_ids, padding_mask, segment_ids):
        return classify({"token_ids": token_ids, "padding_mask": padding_mask,
                         "segment_ids": segment_ids})

    endpoints = {
        SERVING_SIGNATURE: archive.add_endpoint(SERVING_SIGNATURE, serve_text, serving_specs),
        TOKEN_IDS_SIGNATURE: archive.add_endpoint(
            TOKEN_IDS_SIGNATURE, serve_token_ids,
            [tf.TensorSpec([None, None], tf.int32, name=name) for name in TOKEN_INPUT_NAMES]),
    }
    return endpoints, serve_text


def _truncation_note(packer_truncate, head_tokens, sequence_length):
    """How the export cuts a too-long input, for its metadata."""
    if head_tokens is None:
        return f"{packer_truncate}: tokens beyond sequence_length dropped, [CLS]/[SEP] kept"
    tail = text_token_budget(sequence_length) - head_tokens
    return (f"head_tail: a text longer than sequence_length keeps its first {head_tokens} and last "
            f"{tail} tokens, [CLS]/[SEP] kept")


def _text_metadata(class_names, sequence_length, pair, tokenizer, lowercase, truncation_note):
    """What assets.extra/tfmodels_export.json says about a text classifier export."""
    return {
        "task": "text_classifier",
        "class_names": class_names,
        "sequence_length": sequence_length,
        "pair": bool(pair),
        "tokenizer": {
            "type": "keras_hub.tokenizers.BertTokenizer (WordPiece)",
            "vocabulary_file": f"{EXTRA_ASSETS_DIR}/vocab.txt",
            "vocabulary_size": tokenizer.vocabulary_size(),
            "lowercase": bool(lowercase),
            "special_tokens": {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]"},
            "truncation": truncation_note,
        },
        "inputs": {
            "empty_string": "tokenized to [CLS] [SEP]; valid probabilities",
            "over_long_text": f"truncated to {sequence_length} tokens",
            "encoding": "UTF-8",
        },
    }


def export_mlp(model, *, mean, std, class_names, export_base, model_name, input_name="features",
               verify_features=None, verify_atol=None, verify=True):
    """Exports an MLP classifier on float features, with normalization inside the graph.

    Args:
        model: keras.Model. Takes {input_name: float32 [B, ...]} (normalized features) and
            returns float32 logits [B, C].
        mean: array-like. Per-feature training mean, shape of one example.
        std: array-like. Per-feature training std, same shape; zeros (constant features)
            divide by 1.
        class_names: list of str. One name per logit, in logit order.
        export_base: str. Directory holding one sub-directory per model name.
        model_name: str. Name TensorFlow Serving serves the model under.
        input_name: str. Name of the model input and of the signature input.
            Defaults to "features".
        verify_features: array-like [N, ...]. Raw (unnormalized) held-out examples. Defaults to
            8 examples drawn around `mean` with spread `std`.
        verify_atol: float. Max abs difference of probabilities allowed. Defaults to 1e-5 for
            float32 models and 1e-2 for bfloat16/float16 ones.
        verify: bool. Reload in a fresh process and compare. Defaults to True.

    Returns:
        str. The new version directory.
    """
    _check_name("model_name", model_name)
    class_names = _check_class_names(class_names, model)
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if mean.shape != std.shape:
        raise ExportError(f"mean shape {mean.shape} differs from std shape {std.shape}; pass "
                          "one value per feature for both")
    if np.any(std < 0) or not np.all(np.isfinite(std)) or not np.all(np.isfinite(mean)):
        raise ExportError("std must be finite and >= 0 and mean finite; got "
                          f"std min {std.min()}, mean/std non-finite values present")
    safe_std = np.where(std == 0, 1.0, std).astype(np.float32)
    mean_tensor, std_tensor = tf.constant(mean), tf.constant(safe_std)
    names_tensor = tf.constant(class_names)

    def serve(features):
        normalized = (features - mean_tensor) / std_tensor
        return _classification_outputs(model({input_name: normalized}, training=False),
                                       names_tensor)

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *mean.shape], tf.float32, name=input_name)
    endpoints = {SERVING_SIGNATURE: archive.add_endpoint(
        SERVING_SIGNATURE, _rename_single_argument(serve, input_name), [spec])}

    if verify_features is None:
        rng = np.random.default_rng(0)
        verify_features = mean + safe_std * rng.standard_normal((8, *mean.shape))
    verify_features = np.asarray(verify_features, dtype=np.float32)
    if verify_features.shape[1:] != mean.shape:
        raise ExportError(f"verify_features shape {verify_features.shape} does not match "
                          f"features of shape {mean.shape}; use [N, *{list(mean.shape)}]")
    verify_inputs = {input_name: verify_features}
    reference = _to_numpy(serve(tf.constant(verify_features)))
    metadata = {
        "task": "mlp",
        "class_names": class_names,
        "feature_shape": list(mean.shape),
        "normalization": {"formula": "(features - mean) / std; std == 0 replaced by 1",
                          "mean": mean.tolist(), "std": std.tolist()},
    }
    plan = _ExportPlan(archive, endpoints, verify_inputs, reference,
                       resolve_atol(model, verify_atol), metadata)
    return _publish(plan, export_base, model_name, model, verify)


def export_encoder(encoder, *, export_base, model_name, sequence_length=None,
                   verify_token_ids=None, verify_atol=None, verify=True):
    """Exports an encoder's sequence and pooled outputs for token inputs, for reuse.

    Args:
        encoder: keras.Model. Takes {"token_ids", "padding_mask", "segment_ids"} int32 [B, L]
            and returns a dict with "sequence_output" and "pooled_output" (e.g. a
            keras_hub BertBackbone).
        export_base: str. Directory holding one sub-directory per model name.
        model_name: str. Name TensorFlow Serving serves the model under.
        sequence_length: int. Length of the generated verification inputs. Defaults to the
            encoder's max_sequence_length, else 16.
        verify_token_ids: array-like int [N, L]. Held-out token ids (padding 0). Defaults to
            random ids below the encoder's vocabulary_size.
        verify_atol: float. Max abs difference allowed. Defaults to 1e-5 for float32 encoders
            and 1e-2 for bfloat16/float16 ones.
        verify: bool. Reload in a fresh process and compare. Defaults to True.

    Returns:
        str. The new version directory.
    """
    _check_name("model_name", model_name)

    def serve(token_ids, padding_mask, segment_ids):
        outputs = encoder({"token_ids": token_ids, "padding_mask": padding_mask,
                           "segment_ids": segment_ids}, training=False)
        if not isinstance(outputs, dict) or not {"sequence_output", "pooled_output"} <= set(
                outputs):
            raise ExportError("encoder must return a dict with 'sequence_output' and "
                              f"'pooled_output'; got {type(outputs).__name__}")
        return {key: tf.cast(outputs[key], tf.float32)
                for key in ("sequence_output", "pooled_output")}

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    endpoints = {SERVING_SIGNATURE: archive.add_endpoint(
        SERVING_SIGNATURE, serve,
        [tf.TensorSpec([None, None], tf.int32, name=name) for name in TOKEN_INPUT_NAMES])}

    verify_inputs = _token_verify_inputs(encoder, verify_token_ids, sequence_length)
    reference = _to_numpy(serve(**{k: tf.constant(v) for k, v in verify_inputs.items()}))
    metadata = {"task": "encoder",
                "hidden_dim": int(reference["pooled_output"].shape[-1]),
                "max_sequence_length": getattr(encoder, "max_sequence_length", None),
                "vocabulary_size": getattr(encoder, "vocabulary_size", None)}
    plan = _ExportPlan(archive, endpoints, verify_inputs, reference,
                       resolve_atol(encoder, verify_atol), metadata)
    return _publish(plan, export_base, model_name, encoder, verify)


def load_servable(path):
    """Loads an export given a version dir, a model dir (highest version) or an export base.

    Args:
        path: str. `<base>/<name>/<version>`, `<base>/<name>` or `<base>` holding one model.

    Returns:
        Servable. The loaded SavedModel with its directory and metadata.
    """
    import tensorflow_text  # noqa: F401  registers the tokenizer ops before loading

    version_dir = resolve_version_dir(path)
    metadata_path = os.path.join(version_dir, EXTRA_ASSETS_DIR, METADATA_FILENAME)
    metadata = {}
    if os.path.isfile(metadata_path):
        with open(metadata_path, encoding="utf-8") as f:
            metadata = json.load(f)
    return Servable(version_dir, tf.saved_model.load(version_dir), metadata)


def resolve_version_dir(path):
    """Returns the SavedModel directory that `path` names (see load_servable).

    Args:
        path: str. A version dir, a model dir or an export base with exactly one model.
    """
    if not os.path.isdir(path):
        raise ExportError(f"export path {path!r} is not a directory; pass "
                          "<export_base>/<model_name>[/<version>]")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = list_versions(path)
    if versions:
        return os.path.join(path, str(versions[-1]))
    models = sorted(name for name in os.listdir(path)
                    if os.path.isdir(os.path.join(path, name))
                    and list_versions(os.path.join(path, name)))
    if len(models) == 1:
        return os.path.join(path, models[0], str(list_versions(os.path.join(path, models[0]))[-1]))
    if not models:
        raise ExportError(f"export path {path!r} holds no saved_model.pb and no integer version "
                          "directories; allowed: <export_base>/<model_name>[/<version>] as trainers.export "
                          "writes it (a training run directory is exported first)")
    raise ExportError(f"export base {path!r} holds several models ({', '.join(models)}); pass "
                      "one of them")


def list_versions(model_dir):
    """Returns the sorted integer versions under a model dir (TF Serving's rule: digit names).

    Args:
        model_dir: str. `<export_base>/<model_name>`.
    """
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(model_dir, name)))


# ---------------------------------------------------------------------------------------------
# Signature helpers


def _classification_outputs(logits, names_tensor):
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {"probabilities": probabilities, "class_ids": class_ids,
            "class_names": tf.gather(names_tensor, class_ids)}


def _rename_single_argument(fn, name):
    """Returns a one-argument wrapper whose parameter is called `name` (the signature key)."""
    namespace = {"fn": fn}
    exec(f"def endpoint({name}):\n    return fn({name})\n", namespace)  # noqa: S102
    return namespace["endpoint"]


def _text_verify_inputs(verify_texts, pair, tokenizer, sequence_length):
    if verify_texts is None:
        vocab = [token for token in tokenizer.get_vocabulary()
                 if not (token.startswith("[") or token.startswith("##"))] or ["a"]
        short = "".join(vocab[:3])
        long_text = "".join(vocab[i % len(vocab)] for i in range(2 * sequence_length + 5))
        verify_texts = ["", short, long_text]
        if pair:
            verify_texts = [("", ""), (short, long_text), (long_text, short)]
    verify_texts = list(verify_texts)
    if not verify_texts:
        raise ExportError("verify_texts is empty; pass at least one held-out text")
    if pair:
        if not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in verify_texts):
            raise ExportError("verify_texts for a pair model must hold (text, text_pair) "
                              f"tuples; got {verify_texts[0]!r}")
        return {"text": np.array([a for a, _ in verify_texts], dtype=str),
                "text_pair": np.array([b for _, b in verify_texts], dtype=str)}
    if not all(isinstance(item, str) for item in verify_texts):
        raise ExportError(f"verify_texts must hold str; got {verify_texts[0]!r}")
    return {"text": np.array(verify_texts, dtype=str)}


def _token_verify_inputs(encoder, verify_token_ids, sequence_length):
    if verify_token_ids is None:
        length = sequence_length or getattr(encoder, "max_sequence_length", None) or 16
        vocab_size = getattr(encoder, "vocabulary_size", None) or 5
        rng = np.random.default_rng(0)
        token_ids = rng.integers(1, vocab_size, size=(4, length)).astype(np.int32)
        token_ids[1, length // 2:] = 0  # one padded row
    else:
        token_ids = np.asarray(verify_token_ids, dtype=np.int32)
        if token_ids.ndim != 2:
            raise ExportError(f"verify_token_ids has shape {token_ids.shape}; use [N, length]")
    return {"token_ids": token_ids,
            "padding_mask": (token_ids != 0).astype(np.int32),
            "segment_ids": np.zeros_like(token_ids)}


def _to_numpy(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


def _check_name(argument, value):
    if not isinstance(value, str) or not value or value.startswith(".") or os.sep in value:
        raise ExportError(f"{argument}={value!r} invalid; use a non-empty directory name without "
                          "'/' that does not start with '.'")


def _check_class_names(class_names, model):
    class_names = [str(name) for name in (class_names or [])]
    num_classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if not class_names:
        raise ExportError("class_names is empty; pass one name per model output")
    if num_classes is not None and len(class_names) != num_classes:
        raise ExportError(f"class_names has {len(class_names)} names but the model outputs "
                          f"{num_classes} logits; pass one name per logit")
    return class_names


def compute_dtype(model):
    """Returns the lowest-precision compute dtype of the model's layers ("float32" if none).

    Args:
        model: keras.Model. The model to inspect.
    """
    dtypes = {getattr(getattr(layer, "dtype_policy", None), "compute_dtype", None)
              for layer in [model, *model._flatten_layers(include_self=False)]}
    for low in ("bfloat16", "float16"):
        if low in dtypes:
            return low
    return "float32"


def resolve_atol(model, verify_atol):
    if verify_atol is not None:
        if not verify_atol > 0:
            raise ExportError(f"verify_atol={verify_atol!r} invalid; use a float > 0")
        return float(verify_atol)
    return FLOAT32_ATOL if compute_dtype(model) == "float32" else LOW_PRECISION_ATOL


# ---------------------------------------------------------------------------------------------
# Writing, verifying, publishing


def _publish(plan, export_base, model_name, model, verify):
    """Writes the plan into a temporary dir, verifies it, then renames it to the next version."""
    model_dir = os.path.join(export_base, model_name)
    os.makedirs(model_dir, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=model_dir)
    try:
        _write_savedmodel(plan.archive, temp_dir)
        verification = (verify_export(temp_dir, plan.verify_inputs, plan.reference_outputs,
                                      plan.atol) if verify else {"performed": False})
        _write_extra_assets(temp_dir, plan, model_name, model, verification)
        return _rename_into_place(with_umask_permissions(temp_dir), model_dir)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def _write_savedmodel(archive, directory):
    archive.write_out(directory, verbose=False)


def _write_extra_assets(directory, plan, model_name, model, verification):
    extra_dir = os.path.join(directory, EXTRA_ASSETS_DIR)
    os.makedirs(extra_dir, exist_ok=True)
    for name, text in plan.extra_files.items():
        with open(os.path.join(extra_dir, name), "w", encoding="utf-8") as f:
            f.write(text)
    warmup_written = write_warmup_requests(
        os.path.join(extra_dir, WARMUP_FILENAME), model_name,
        {SERVING_SIGNATURE: plan.verify_inputs, **plan.extra_warmup_inputs})
    custom_ops = custom_ops_in(directory)
    metadata = {
        "format_version": 1,
        "model_name": model_name,
        **plan.metadata,
        "signatures": {name: _describe_endpoint(fn) for name, fn in plan.endpoints.items()},
        "custom_ops": custom_ops,
        "custom_op_libraries": ["tensorflow-text"] if custom_ops else [],
        "load_note": ("import tensorflow_text before tf.saved_model.load; the stock TF Serving "
                      "model server links the tensorflow-text ops (TFText>RoundRobinTrim from "
                      "2.20.0)") if custom_ops else "core TF ops only",
        "compute_dtype": compute_dtype(model),
        "verification": verification,
        "warmup_requests": warmup_written,
        "versions": {"tfmodels": tfmodels_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with open(os.path.join(extra_dir, METADATA_FILENAME), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, ensure_ascii=False)


def _describe_endpoint(fn):
    concrete = fn.get_concrete_function()
    inputs = {spec.name: [spec.dtype.name, spec.shape.as_list()]
              for spec in tf.nest.flatten(concrete.structured_input_signature)}
    outputs = {key: [spec.dtype.name, spec.shape.as_list()]
               for key, spec in sorted(concrete.structured_outputs.items())}
    return {"inputs": dict(sorted(inputs.items())), "outputs": outputs}


def custom_ops_in(export_dir):
    """Returns the ops in a SavedModel that core TensorFlow lacks (here: tensorflow-text ops).

    Args:
        export_dir: str. SavedModel directory.
    """
    return [op for op in verify_worker.graph_op_names(export_dir) if not hasattr(tf.raw_ops, op)]


def with_umask_permissions(tree):
    """Gives `tree` and everything in it the permissions a new directory or file gets under the
    process's umask (a temporary directory is created private, 0700), so that a model server or a
    colleague under another user can read a published export as they could any other file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tree, 0o777 & ~umask)
    for root, directories, files in os.walk(tree):
        for name in directories:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)
    return tree


def _rename_into_place(temp_dir, model_dir):
    for _ in range(1000):
        target = os.path.join(model_dir, str((list_versions(model_dir) or [0])[-1] + 1))
        if os.path.exists(target):
            continue
        try:
            os.rename(temp_dir, target)
        except OSError as error:  # another export took this version first
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue
            raise
        return target
    raise ExportError(f"could not claim a free version number in {model_dir!r}")


def verify_export(export_dir, inputs, reference_outputs, atol, signature=SERVING_SIGNATURE):
    """Reloads an export in a fresh process and compares its outputs with reference outputs.

    Args:
        export_dir: str. SavedModel directory.
        inputs: dict of str to np.ndarray. Signature inputs.
        reference_outputs: dict of str to np.ndarray. In-memory model outputs.
        atol: float. Max abs difference allowed on float outputs.
        signature: str. Signature to run. Defaults to "serving_default".

    Returns:
        dict. The verification record stored in the export metadata.

    Raises:
        ExportVerificationError: the reload fails or an output differs by more than atol.
    """
    with tempfile.TemporaryDirectory(prefix="tfmodels-verify-") as work:
        paths = {name: os.path.join(work, name)
                 for name in ("inputs.npz", "outputs.npz", "result.json")}
        np.savez(paths["inputs.npz"], **inputs)
        process = _run_worker(export_dir, signature, paths)
        if process.returncode != 0:
            tail = "; ".join(process.stderr.strip().splitlines()[-3:])
            raise ExportVerificationError(
                f"reloading {export_dir!r} in a fresh process failed (exit {process.returncode}):"
                f" {tail}")
        with np.load(paths["outputs.npz"]) as stored:
            reloaded = {key: stored[key] for key in stored.files}
        with open(paths["result.json"], encoding="utf-8") as f:
            worker_result = json.load(f)
    differences = _compare_outputs(reference_outputs, reloaded)
    record = {
        "performed": True,
        "signature": signature,
        "examples": int(len(next(iter(inputs.values())))),
        "atol": atol,
        "max_abs_difference": differences,
        "passed": all(diff <= atol for diff in differences.values()),
        "fresh_process_custom_ops": worker_result["custom_ops"],
        "fresh_process_imports": ["tensorflow", *worker_result["custom_op_libraries"]],
    }
    if not record["passed"]:
        worst = max(differences, key=differences.get)
        raise ExportVerificationError(
            f"export verification failed: output {worst!r} of the reloaded SavedModel differs "
            f"from the in-memory model by {differences[worst]:.3g} > atol {atol:g}; "
            "no version was written")
    return record


def _run_worker(export_dir, signature, paths):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, _WORKER_PATH, export_dir, signature, paths["inputs.npz"],
               paths["outputs.npz"], paths["result.json"]]
    return subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=VERIFY_TIMEOUT_S, check=False)


def _compare_outputs(reference, reloaded):
    differences = {}
    for key, expected in reference.items():
        if key not in reloaded:
            raise ExportVerificationError(f"reloaded export lacks output {key!r}; it has "
                                          f"{', '.join(sorted(reloaded))}")
        if not np.issubdtype(expected.dtype, np.floating):
            continue
        actual = reloaded[key]
        if actual.shape != expected.shape:
            raise ExportVerificationError(f"output {key!r} has shape {actual.shape} after reload,"
                                          f" {expected.shape} in memory")
        differences[key] = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    return differences


def write_warmup_requests(path, model_name, inputs_by_signature, max_requests=3):
    """Writes TF Serving warmup requests (tensorflow-serving-api, a pinned requirement).

    TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a version; each
    signature is warmed, since each runs its own part of the graph.

    Args:
        path: str. Destination (`assets.extra/tf_serving_warmup_requests`).
        model_name: str. Model name in the requests.
        inputs_by_signature: dict of str to dict of str to np.ndarray. Example inputs of each
            signature to warm, batch first.
        max_requests: int. One-example requests per signature. Defaults to 3.

    Returns:
        bool. True if written, False if tensorflow_serving is not importable (an install
        without the pinned requirements).
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        return False
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in inputs_by_signature.items():
            for index in range(min(max_requests, len(next(iter(inputs.values()))))):
                request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                    name=model_name, signature_name=signature_name))
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value[index:index + 1]))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
    return True


def tfmodels_version():
    """Returns the installed tfmodels version, or "unknown"."""
    try:
        return importlib.metadata.version("tfmodels")
    except importlib.metadata.PackageNotFoundError:
        import tfmodels
        return getattr(tfmodels, "__version__", "unknown")
