"""Hugging Face export: a BERT encoder or classifier as a `transformers` BERT directory.

The directory holds `config.json`, `model.safetensors` (float32), `vocab.txt`, `tokenizer.json`,
`tokenizer_config.json` and `special_tokens_map.json`, and loads with
`transformers.BertModel.from_pretrained(dir)` / `BertForSequenceClassification.from_pretrained(dir)`,
with `keras_hub.models.BertBackbone.from_preset(dir)` and with this package's
`models.load_encoder(dir)`.

What maps where:
  - an encoder (`BertBackbone`) → `BertModel` (weights without a prefix);
  - a classifier with `pooling="cls"` (pooler on [CLS], dropout, Dense) →
    `BertForSequenceClassification` (weights under `bert.` plus `classifier.weight/bias`),
    the same computation, with `id2label`/`label2id` from the class names;
  - a classifier with `pooling="mean"` or `"max_mean"` has no `transformers` class (BERT heads
    read the pooler): the encoder is written as a `BertModel` and the head as
    `classifier_head.safetensors` (`classifier.weight` [C, H] or [C, 2H], `classifier.bias` [C]);
    logits are `features @ weight.T + bias`, where the features are
    `mean(last_hidden_state over attention_mask)`, or for "max_mean"
    `concat(max(...), mean(...))` over the same tokens. `config.json` records
    `tfmodels_pooling` and the labels.

`transformers.AutoTokenizer.from_pretrained(dir)` reads `tokenizer.json`, which splits text as the
keras-hub tokenizer the model was trained with does (`hf_tokenizer`): transformers' own
`BertTokenizer` would read full-width punctuation ("，", "！", most of the commas of Chinese text) as
[UNK].

keras-hub's BERT uses the tanh approximation of GELU, so `hidden_act` is `gelu_new`.
Before the directory is moved into place it is reloaded with `load_encoder` and its outputs
compared with the model's (max abs difference <= 1e-5 for float32 models, 1e-2 for models
computing in bfloat16/float16); `tfmodels_export.json` records the result.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from tfmodels.export.hf_tokenizer import PROBE_TEXTS, tokenizer_json
from tfmodels.export.saved_model import (METADATA_FILENAME, ExportError, ExportVerificationError,
                                         compute_dtype, resolve_atol, tfmodels_version,
                                         with_umask_permissions)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_FILE = "classifier_head.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}
HIDDEN_ACT = "gelu_new"  # tanh-approximated GELU, keras-hub's `gelu_approximate`


def export_huggingface(model, *, vocab_path, output_dir, lowercase, class_names=None,
                       verify=True, verify_atol=None, training_truncation=None, sequence_length=None,
                       verify_texts=None):
    """Writes a BERT encoder or classifier as a Hugging Face `transformers` BERT directory.

    Args:
        model: keras.Model. A `keras_hub.models.BertBackbone`, or a classifier from
            `models.build_bert_classifier` (any pooling).
        vocab_path: str. The WordPiece vocab.txt the model was trained with.
        output_dir: str. Directory to create; must not exist or be empty.
        lowercase: bool. Whether the vocabulary expects lowercased text (`do_lower_case`).
        class_names: list of str. One name per logit (classifiers). Defaults to
            LABEL_0, LABEL_1, ...
        verify: bool. Reload with `models.load_encoder` and compare outputs, and tokenize
            `hf_tokenizer.PROBE_TEXTS` plus `verify_texts` with the written `tokenizer.json` (Hugging
            Face `tokenizers`) and with the model's keras-hub tokenizer. Defaults to True.
        verify_atol: float | None. Max abs difference allowed; None: 1e-5 for float32 models,
            1e-2 for bfloat16/float16 ones (as the SavedModel export).
        training_truncation: dict | None. How the classifier's training cut long texts when
            that was not head-only, e.g. {"truncation": "head_tail", "head_tokens": 31,
            "sequence_length": 128}: `transformers` tokenizers truncate from one side only, so
            `config.json` records it as `tfmodels_truncation` for callers to apply. Defaults to None.
        sequence_length: int | None. The token length the model was trained at: the tokenizer's
            `model_max_length`, so `truncation=True` cuts where the SavedModel export cuts (positions
            beyond it were not trained). Defaults to the encoder's max_sequence_length.
        verify_texts: list of str | None. Texts of the run's own data whose token ids must be
            the same under `tokenizer.json` as under the model's tokenizer. Defaults to None.

    Returns:
        str. `output_dir`.

    Raises:
        ExportError: not a BERT model, a vocabulary that does not match, or a non-empty
            `output_dir`. ExportVerificationError: the reloaded outputs differ, or a text
            tokenizes differently under `tokenizer.json`.

    Example:
        >>> export_huggingface(classifier, vocab_path="runs/ft/vocab.txt", output_dir="hf/sentiment",
        ...                    lowercase=True, class_names=["negative", "positive"])
    """
    from tfmodels.models.bert import find_encoder

    try:
        encoder = find_encoder(model)
    except ValueError as error:
        raise ExportError(f"--format=huggingface exports BERT encoders and classifiers only; "
                          f"{error}") from None
    vocabulary = _read_vocabulary(vocab_path, encoder.vocabulary_size)
    head = None if encoder is model else _classifier_head(model, class_names)
    if head is not None and training_truncation:
        head["truncation"] = dict(training_truncation)
    _check_output_dir(output_dir)
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix=".tmp-hf-", dir=parent)
    try:
        _write_directory(temp_dir, encoder, head, vocabulary, lowercase,
                         sequence_length or encoder.max_sequence_length)
        if verify:
            record = verify_huggingface_export(temp_dir, model, head, resolve_atol(model, verify_atol))
            record["tokenizer"] = verify_tokenizer(temp_dir, lowercase, verify_texts or [])
        else:
            record = {"performed": False}
        _write_metadata(temp_dir, model, head, record)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # empty (checked above)
        os.rename(with_umask_permissions(temp_dir), output_dir)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return output_dir


def _read_vocabulary(vocab_path, vocabulary_size):
    if not os.path.isfile(vocab_path):
        raise ExportError(f"vocab_path {vocab_path!r} is not a file; pass the vocab.txt used "
                          "in training")
    with open(vocab_path, encoding="utf-8") as f:
        tokens = f.read().splitlines()
    if len(tokens) != vocabulary_size:
        raise ExportError(f"{vocab_path}: {len(tokens)} tokens but the encoder's vocabulary_size "
                          f"is {vocabulary_size}; pass the vocab.txt used in training")
    missing = [token for token in SPECIAL_TOKENS.values() if token not in tokens]
    if missing:
        raise ExportError(f"{vocab_path}: lacks {', '.join(missing)}; a BERT vocabulary needs "
                          f"{', '.join(SPECIAL_TOKENS.values())}")
    return tokens


def _classifier_head(model, class_names):
    """Returns the head of a BERT classifier: pooling, logits kernel/bias, dropout, names."""
    layer_names = {layer.name for layer in model.layers}
    if "pooled_encoder_output" in layer_names:
        pooling = "cls"
    elif "mean_pooling" in layer_names:
        pooling = "mean"
    elif "max_mean_pooling" in layer_names:
        pooling = "max_mean"
    else:
        raise ExportError(f"model {model.name!r} is not a BERT classifier from "
                          "build_bert_classifier (no [CLS], mean or max_mean pooling layer found)")
    logits = model.get_layer("logits")
    kernel, bias = (np.asarray(v.numpy(), np.float32) for v in (logits.kernel, logits.bias))
    num_classes = kernel.shape[-1]
    names = ([f"LABEL_{i}" for i in range(num_classes)] if class_names is None
             else [str(name) for name in class_names])
    if len(names) != num_classes:
        raise ExportError(f"class_names has {len(names)} names but the model outputs "
                          f"{num_classes} logits; pass one name per logit")
    return {"pooling": pooling, "kernel": kernel, "bias": bias, "class_names": names,
            "dropout": float(model.get_layer("head_dropout").rate)}


def _check_output_dir(output_dir):
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise ExportError(f"output directory {output_dir!r} exists and is not empty; choose a "
                          "new directory (an export never overwrites files)")


# ---------------------------------------------------------------------------------------------
# Writing


def _write_directory(directory, encoder, head, vocabulary, lowercase, model_max_length):
    from safetensors.numpy import save_file

    as_sequence_classifier = head is not None and head["pooling"] == "cls"
    prefix = "bert." if as_sequence_classifier else ""
    tensors = {f"{prefix}{key}": value for key, value in encoder_tensors(encoder).items()}
    if head is not None:
        head_tensors = {"classifier.weight": np.ascontiguousarray(head["kernel"].T),
                        "classifier.bias": head["bias"]}
        if as_sequence_classifier:
            tensors.update(head_tensors)
        else:
            save_file(head_tensors, os.path.join(directory, HEAD_FILE), metadata={"format": "pt"})
    save_file(tensors, os.path.join(directory, WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json(os.path.join(directory, CONFIG_FILE),
                huggingface_config(encoder, head, vocabulary.index("[PAD]")))
    with open(os.path.join(directory, VOCAB_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary) + "\n")
    _write_json(os.path.join(directory, TOKENIZER_FILE), tokenizer_json(vocabulary, bool(lowercase)))
    # PreTrainedTokenizerFast takes tokenizer.json as written; BertTokenizer would rebuild its text
    # normalization from do_lower_case, which keras-hub and this package's loader read.
    _write_json(os.path.join(directory, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast", "do_lower_case": bool(lowercase),
        "strip_accents": False, "tokenize_chinese_chars": True,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        "model_max_length": int(model_max_length),
        "clean_up_tokenization_spaces": False, **SPECIAL_TOKENS})
    _write_json(os.path.join(directory, "special_tokens_map.json"), SPECIAL_TOKENS)


def encoder_tensors(encoder):
    """Returns the encoder's weights as float32 arrays under Hugging Face `BertModel` names.

    The inverse of keras-hub's `convert_bert.convert_weights`: Dense kernels [in, out] become
    torch Linear weights [out, in]; the attention EinsumDense kernels are flattened over heads.

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder.
    """
    def value(variable):
        return np.asarray(variable.numpy(), dtype=np.float32)

    def linear(kernel, inputs):  # [in..., out...] -> torch [out, in]
        return np.ascontiguousarray(value(kernel).reshape(inputs, -1).T)

    hidden = encoder.hidden_dim
    tensors = {
        "embeddings.word_embeddings.weight": value(encoder.token_embedding.embeddings),
        "embeddings.position_embeddings.weight":
            value(encoder.position_embedding.position_embeddings),
        "embeddings.token_type_embeddings.weight": value(encoder.segment_embedding.embeddings),
        "embeddings.LayerNorm.weight": value(encoder.embeddings_layer_norm.gamma),
        "embeddings.LayerNorm.bias": value(encoder.embeddings_layer_norm.beta),
        "pooler.dense.weight": linear(encoder.pooled_dense.kernel, hidden),
        "pooler.dense.bias": value(encoder.pooled_dense.bias),
    }
    for i, block in enumerate(encoder.transformer_layers):
        attention = block._self_attention_layer
        base = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            dense = getattr(attention, f"{name}_dense")
            tensors[f"{base}attention.self.{name}.weight"] = linear(dense.kernel, hidden)
            tensors[f"{base}attention.self.{name}.bias"] = value(dense.bias).reshape(-1)
        output = attention.output_dense
        tensors[f"{base}attention.output.dense.weight"] = linear(
            output.kernel, int(np.prod(output.kernel.shape[:-1])))
        tensors[f"{base}attention.output.dense.bias"] = value(output.bias)
        for hf_name, norm in (("attention.output.LayerNorm", block._self_attention_layer_norm),
                              ("output.LayerNorm", block._feedforward_layer_norm)):
            tensors[f"{base}{hf_name}.weight"] = value(norm.gamma)
            tensors[f"{base}{hf_name}.bias"] = value(norm.beta)
        for hf_name, dense in (("intermediate.dense", block._feedforward_intermediate_dense),
                               ("output.dense", block._feedforward_output_dense)):
            tensors[f"{base}{hf_name}.weight"] = linear(dense.kernel, dense.kernel.shape[0])
            tensors[f"{base}{hf_name}.bias"] = value(dense.bias)
    return tensors


def huggingface_config(encoder, head, pad_token_id):
    """Returns the `transformers` BertConfig dict of an encoder (and classifier head).

    Args:
        encoder: keras_hub.models.BertBackbone. The encoder.
        head: dict or None. From `_classifier_head`; None for an encoder.
        pad_token_id: int. Id of [PAD].
    """
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": int(encoder.vocabulary_size),
        "hidden_size": int(encoder.hidden_dim),
        "num_hidden_layers": int(encoder.num_layers),
        "num_attention_heads": int(encoder.num_heads),
        "intermediate_size": int(encoder.intermediate_dim),
        "hidden_act": HIDDEN_ACT,
        "hidden_dropout_prob": float(encoder.dropout),
        "attention_probs_dropout_prob": float(encoder.dropout),
        "max_position_embeddings": int(encoder.max_sequence_length),
        "type_vocab_size": int(encoder.num_segments),
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": int(pad_token_id),
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    if head is not None:
        names = head["class_names"]
        config.update({
            "id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)},
            "classifier_dropout": head["dropout"],
            "problem_type": "single_label_classification",
            "tfmodels_pooling": head["pooling"],
        })
        if "truncation" in head:
            config["tfmodels_truncation"] = head["truncation"]
        if head["pooling"] == "cls":
            config["architectures"] = ["BertForSequenceClassification"]
        else:
            config["tfmodels_classifier_head"] = HEAD_FILE
    return config


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _write_metadata(directory, model, head, verification):
    _write_json(os.path.join(directory, METADATA_FILENAME), {
        "format_version": 1,
        "task": "encoder" if head is None else "text_classifier",
        "format": "huggingface",
        "pooling": None if head is None else head["pooling"],
        "transformers_class": ("BertForSequenceClassification"
                               if head is not None and head["pooling"] == "cls" else "BertModel"),
        "classifier_head_file": HEAD_FILE if head is not None and head["pooling"] != "cls"
        else None,
        "compute_dtype": compute_dtype(model),
        "verification": verification,
        "versions": {"tfmodels": tfmodels_version()},
    })


# ---------------------------------------------------------------------------------------------
# Verification (and the reference computation a PyTorch user reproduces)


def classifier_logits(sequence_output, pooled_output, padding_mask, head_kernel, head_bias,
                      pooling):
    """Returns float64 logits [B, C] from encoder outputs, as the exported head computes them.

    Args:
        sequence_output: array [B, L, H]. The encoder's last hidden state.
        pooled_output: array [B, H]. tanh(dense([CLS])), the pooler output.
        padding_mask: array [B, L]. 1 for real tokens.
        head_kernel: array [H, C] (Keras layout; the safetensors `classifier.weight` is its
            transpose).
        head_bias: array [C].
        pooling: str. "cls", "mean" or "max_mean".
    """
    if pooling == "cls":
        features = np.asarray(pooled_output, np.float64)
    else:
        mask = np.asarray(padding_mask, np.float64)[..., None]
        sequence = np.asarray(sequence_output, np.float64)
        features = (sequence * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        if pooling == "max_mean":  # a row without real tokens pools to zeros, as in the model
            maximum = np.where(mask > 0, sequence, -np.inf).max(axis=1)
            features = np.concatenate([np.where(np.isfinite(maximum), maximum, 0.0), features], axis=-1)
    return features @ np.asarray(head_kernel, np.float64) + np.asarray(head_bias, np.float64)


def sample_token_inputs(encoder, batch=3, length=None, seed=0):
    """Returns {token_ids, padding_mask, segment_ids} int32 [batch, length] with padded rows.

    Args:
        encoder: keras_hub.models.BertBackbone. Sets the id range and the maximum length.
        batch: int. Rows. Defaults to 3.
        length: int. Columns. Defaults to min(16, max_sequence_length).
        seed: int. Random seed. Defaults to 0.
    """
    length = length or min(16, encoder.max_sequence_length)
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, encoder.vocabulary_size, size=(batch, length)).astype(np.int32)
    padding_mask = np.ones_like(token_ids)
    padding_mask[1:, length // 2:] = 0  # padded rows
    token_ids[padding_mask == 0] = 0
    segment_ids = np.zeros_like(token_ids)
    segment_ids[:, length // 4: length // 2] = 1
    return {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": segment_ids}


def verify_tokenizer(directory, lowercase, texts):
    """Tokenizes `PROBE_TEXTS` and `texts` with the written tokenizer.json and with keras-hub's
    BertTokenizer; returns the record, or raises ExportVerificationError at the first difference.

    Args:
        directory: str. The written Hugging Face directory.
        lowercase: bool. The model's tokenizer setting.
        texts: list of str. The run's own texts.
    """
    import tokenizers

    from tfmodels.data import make_tokenizer

    texts = list(PROBE_TEXTS) + [str(text) for text in texts]
    theirs = tokenizers.Tokenizer.from_file(os.path.join(directory, TOKENIZER_FILE))
    ours = make_tokenizer(os.path.join(directory, VOCAB_FILE), lowercase=lowercase)
    expected = [np.asarray(ids).tolist() for ids in ours(texts)]
    got = [encoding.ids for encoding in theirs.encode_batch(texts, add_special_tokens=False)]
    for text, ids, want in zip(texts, got, expected):
        if ids != want:
            with open(os.path.join(directory, VOCAB_FILE), encoding="utf-8") as f:
                vocabulary = f.read().splitlines()
            at = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
            raise ExportVerificationError(
                f"Hugging Face export verification failed: from token {at} on, {TOKENIZER_FILE} tokenizes "
                f"{text[:60]!r} as {[vocabulary[i] for i in ids[at:at + 8]]}, the model's tokenizer as "
                f"{[vocabulary[i] for i in want[at:at + 8]]}; nothing was written "
                "(--override=export.verify=false writes it anyway)")
    return {"library": "tokenizers", "texts": len(texts), "identical": len(texts)}


def verify_huggingface_export(directory, model, head, atol):
    """Reloads a written directory with `load_encoder` and compares outputs with `model`.

    Args:
        directory: str. The written Hugging Face directory.
        model: keras.Model. The exported encoder or classifier.
        head: dict or None. From `_classifier_head`.
        atol: float. Max abs difference allowed on the outputs.

    Returns:
        dict. The verification record.
    """
    from tfmodels.models.bert import find_encoder
    from tfmodels.models.pretrained import load_encoder

    inputs = sample_token_inputs(find_encoder(model))
    reloaded = load_encoder(directory, dtype="float32").encoder(inputs, training=False)
    sequence, pooled = (np.asarray(reloaded[k], np.float64)
                        for k in ("sequence_output", "pooled_output"))
    if head is None:
        expected = model(inputs, training=False)
        pairs = {"sequence_output": (sequence, expected["sequence_output"]),
                 "pooled_output": (pooled, expected["pooled_output"])}
    else:
        logits = classifier_logits(sequence, pooled, inputs["padding_mask"], head["kernel"],
                                   head["bias"], head["pooling"])
        pairs = {"logits": (logits, model(inputs, training=False))}
    differences = {name: float(np.max(np.abs(actual - np.asarray(expected, np.float64))))
                   for name, (actual, expected) in pairs.items()}
    if any(diff > atol for diff in differences.values()):
        worst = max(differences, key=differences.get)
        raise ExportVerificationError(
            f"Hugging Face export verification failed: {worst} of the reloaded directory differs "
            f"from the model by {differences[worst]:.3g} > atol {atol:g}; nothing was written")
    return {"performed": True, "loader": "tfmodels.models.load_encoder", "atol": atol,
            "examples": int(len(inputs["token_ids"])), "max_abs_difference": differences,
            "passed": True}
