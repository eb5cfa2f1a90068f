"""Tests for tfmodels.export.saved_model: signatures, layout, verification, reload."""
import json
import os
import re
import subprocess
import sys

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import export_tiny_models as tiny
from tfmodels.export import saved_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
VERIFY_TEXTS = tiny.VERIFY_TEXTS


def _metadata(version_dir):
    with open(os.path.join(version_dir, "assets.extra", saved_model.METADATA_FILENAME)) as f:
        return json.load(f)


def _reference_probabilities(model, vocab_path, texts):
    """In-memory probabilities, tokenized by keras-hub's own BERT classifier preprocessor."""
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocab_path, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=tiny.SEQUENCE_LENGTH)
    features = {key: tf.cast(value, tf.int32)
                for key, value in preprocessor(tf.constant(texts)).items()}
    return tf.nn.softmax(model(features)).numpy()


def _run(command, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                           timeout=300, check=False, **kwargs)


def _cli_result(stdout, key):
    block = stdout.split(f"Result for output key {key}:")[1].split("Result for")[0]
    return np.array([float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", block)])


# --- text classifier -------------------------------------------------------------------------


def test_text_export_writes_version_one_with_metadata(text_export):
    assert os.path.basename(text_export) == "1"
    assert os.listdir(os.path.dirname(text_export)) == ["1"]  # no temp dir left
    metadata = _metadata(text_export)
    assert metadata["class_names"] == tiny.CLASS_NAMES
    assert metadata["sequence_length"] == tiny.SEQUENCE_LENGTH
    assert metadata["tokenizer"]["lowercase"] is True
    assert metadata["custom_op_libraries"] == ["tensorflow-text"]
    assert "FastWordpieceTokenizeWithOffsets" in metadata["custom_ops"]
    assert "TFText>RoundRobinTrim" not in metadata["custom_ops"]  # absent from older TF Serving
    verification = metadata["verification"]
    assert verification["passed"] and verification["atol"] == 1e-5
    assert verification["max_abs_difference"]["probabilities"] <= 1e-5
    assert verification["fresh_process_imports"] == ["tensorflow", "tensorflow-text"]
    assert metadata["signatures"]["serving_default"] == {
        "inputs": {"text": ["string", [None]]},
        "outputs": {"class_ids": ["int64", [None]], "class_names": ["string", [None]],
                    "probabilities": ["float32", [None, 2]]}}
    assert os.path.isfile(os.path.join(text_export, "assets.extra", "vocab.txt"))
    assert tiny.permissions_under_umask(text_export) == []  # readable by a server under another user


def test_text_export_in_fresh_process_equals_in_memory_model(text_export):
    record = _metadata(text_export)["verification"]  # run by the export in a fresh process
    assert record["passed"] and record["examples"] == len(VERIFY_TEXTS)
    assert record["max_abs_difference"]["probabilities"] <= 1e-5


def test_in_graph_tokenization_matches_keras_hub_preprocessor(text_export, classifier,
                                                              vocab_path):
    servable = saved_model.load_servable(text_export)
    outputs = servable.signature()(text=tf.constant(VERIFY_TEXTS))
    expected = _reference_probabilities(classifier, vocab_path, VERIFY_TEXTS)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)


def test_text_export_empty_and_long_texts_in_process(text_export, classifier, vocab_path):
    servable = saved_model.load_servable(os.path.dirname(os.path.dirname(text_export)))
    assert servable.path == text_export and servable.kind == "text_classifier"
    outputs = servable.signature()(text=tf.constant(["", "很" * 100, "很" * 10]))
    probabilities = outputs["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # 100 and 10 copies of one char both truncate to the same 12 tokens.
    np.testing.assert_allclose(probabilities[1], probabilities[2], atol=1e-6)
    expected = _reference_probabilities(classifier, vocab_path, ["", "很" * 100])
    np.testing.assert_allclose(probabilities[:2], expected, atol=1e-5)
    assert outputs["class_ids"].dtype == tf.int64
    names = [name.decode() for name in outputs["class_names"].numpy()]
    assert names == [tiny.CLASS_NAMES[i] for i in outputs["class_ids"].numpy()]


def test_token_id_signature_matches_raw_string_signature(text_export):
    servable = saved_model.load_servable(text_export)
    from_text = servable.signature()(text=tf.constant([""]))
    ids = tf.constant([[2, 3] + [0] * 10], tf.int32)  # [CLS] [SEP] [PAD]...
    from_ids = servable.signature("predict_token_ids")(
        token_ids=ids, padding_mask=tf.cast(ids != 0, tf.int32), segment_ids=tf.zeros_like(ids))
    np.testing.assert_allclose(from_ids["probabilities"], from_text["probabilities"], atol=1e-6)


def test_saved_model_cli_show_lists_documented_signatures(text_export):
    shown = _run([SAVED_MODEL_CLI, "show", "--dir", text_export, "--all"])
    assert shown.returncode == 0, shown.stderr[-2000:]
    serving = shown.stdout.split("signature_def['serving_default']")[1]
    for expected in ["inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
                     "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n"
                     "        shape: (-1, 2)",
                     "outputs['class_ids'] tensor_info:\n        dtype: DT_INT64",
                     "outputs['class_names'] tensor_info:\n        dtype: DT_STRING"]:
        assert expected in serving
    token_signature = shown.stdout.split("signature_def['predict_token_ids']")[1]
    assert "inputs['token_ids'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, -1)" \
        in token_signature


def test_saved_model_cli_run_with_text_ops_returns_probabilities(text_export, classifier,
                                                                 vocab_path):
    ran = _run([sys.executable, "-m", "tfmodels.export.saved_model_cli", "run", "--dir",
                text_export, "--tag_set", "serve", "--signature_def", "serving_default",
                "--input_exprs", 'text=["我喜欢这个电影",""]'])
    assert ran.returncode == 0, ran.stderr[-2000:]
    probabilities = _cli_result(ran.stdout, "probabilities").reshape(2, 2)
    expected = _reference_probabilities(classifier, vocab_path, ["我喜欢这个电影", ""])
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.slow
def test_stock_saved_model_cli_run_lacks_text_ops(text_export):
    ran = _run([SAVED_MODEL_CLI, "run", "--dir", text_export, "--tag_set", "serve",
                "--signature_def", "predict_token_ids", "--input_exprs",
                "token_ids=[[2,3]];padding_mask=[[1,1]];segment_ids=[[0,0]]"])
    assert ran.returncode != 0
    assert "Op type not registered" in ran.stderr


def test_pair_export_takes_two_strings(export_root, vocab_path, classifier):
    path = saved_model.export_text_classifier(
        classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
        class_names=tiny.CLASS_NAMES, export_base=str(export_root / "pair"), model_name="nli",
        pair=True, verify=False)  # fresh-process verification is covered for single texts
    metadata = _metadata(path)
    assert metadata["pair"] and metadata["verification"] == {"performed": False}
    assert set(metadata["signatures"]["serving_default"]["inputs"]) == {"text", "text_pair"}
    with pytest.raises(saved_model.ExportError, match="verify_text_pairs needs pair=True"):
        saved_model.export_text_classifier(
            classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH,
            lowercase=True, class_names=tiny.CLASS_NAMES, export_base=str(export_root / "pair"),
            model_name="nli", verify_texts=["a"], verify_text_pairs=["b", "c"])
    servable = saved_model.load_servable(path)
    outputs = servable.signature()(text=tf.constant(["我喜欢"]), text_pair=tf.constant(["电影"]))
    vocab = tiny.SPECIAL_TOKENS + tiny.CHINESE_CHARS
    ids = [2, *[vocab.index(c) for c in "我喜欢"], 3, *[vocab.index(c) for c in "电影"], 3]
    ids = tf.constant([ids + [0] * 4], tf.int32)
    segments = tf.constant([[0] * 5 + [1] * 3 + [0] * 4], tf.int32)
    expected = tf.nn.softmax(classifier({"token_ids": ids, "segment_ids": segments,
                                         "padding_mask": tf.cast(ids != 0, tf.int32)}))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)


def test_head_tail_export_cuts_long_texts_as_the_training_pipeline_does(export_root, vocab_path,
                                                                        classifier):
    path = saved_model.export_text_classifier(
        classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
        class_names=tiny.CLASS_NAMES, export_base=str(export_root / "head_tail"),
        model_name="sentiment", verify_texts=VERIFY_TEXTS, truncation="head_tail", head_tokens=3)
    metadata = _metadata(path)
    assert metadata["verification"]["passed"]
    assert metadata["tokenizer"]["truncation"].startswith("head_tail: a text longer than "
                                                          "sequence_length keeps its first 3 and last 7")
    # Same head and tail, different middles: the export sees the same tokens; a different tail
    # changes them.
    texts = ["我喜欢" + "坏" * 30 + "这个电影太好了", "我喜欢" + "讨厌" * 20 + "这个电影太好了",
             "我喜欢" + "坏" * 30 + "这个电影太坏了", "这个电影"]
    probabilities = saved_model.load_servable(path).signature()(text=tf.constant(texts))["probabilities"]
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=1e-6)
    from tfmodels.data import TextExamples, make_tokenizer, classification_dataset
    dataset = classification_dataset(
        TextExamples(texts, np.zeros(len(texts), np.int32)), make_tokenizer(vocab_path), tiny.SEQUENCE_LENGTH,
        len(texts), shuffle=False, truncation="head_tail", head_tokens=3)
    features, _ = next(iter(dataset))
    vocab = tiny.SPECIAL_TOKENS + tiny.CHINESE_CHARS
    assert features["token_ids"][0].numpy().tolist() == [2, *[vocab.index(c) for c in "我喜欢这个电影太好了"], 3]
    expected = tf.nn.softmax(classifier(features)).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert np.abs(expected[0] - expected[2]).max() > 1e-4
    with pytest.raises(saved_model.ExportError, match="invalid with text pairs"):
        saved_model.export_text_classifier(
            classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
            class_names=tiny.CLASS_NAMES, export_base=str(export_root / "head_tail"),
            model_name="nli", pair=True, truncation="head_tail", verify=False)


# --- MLP and encoder -------------------------------------------------------------------------


def test_mlp_export_verified_in_fresh_process_and_normalizes_inside_graph(mlp_export, mlp):
    metadata = _metadata(mlp_export)
    record = metadata["verification"]  # the export's own fresh-process comparison
    assert record["passed"] and record["max_abs_difference"]["probabilities"] <= 1e-5
    assert record["fresh_process_imports"] == ["tensorflow"]
    assert metadata["custom_ops"] == [] and metadata["task"] == "mlp"
    mean, std = tiny.mlp_normalization()
    features = np.random.default_rng(1).normal(20.0, 10.0, size=(5, 4)).astype(np.float32)
    expected = tf.nn.softmax(mlp({"features": (features - mean) / np.where(std == 0, 1, std)}))
    outputs = saved_model.load_servable(mlp_export).signature()(features=tf.constant(features))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert metadata["signatures"]["serving_default"]["inputs"] == {
        "features": ["float32", [None, 4]]}


def test_stock_saved_model_cli_run_on_mlp_returns_probabilities(mlp_export, mlp):
    ran = _run([SAVED_MODEL_CLI, "run", "--dir", mlp_export, "--tag_set", "serve",
                "--signature_def", "serving_default", "--input_exprs",
                "features=[[0.0,10.0,20.0,30.0],[1.0,2.0,3.0,4.0]]"])
    assert ran.returncode == 0, ran.stderr[-2000:]
    mean, std = tiny.mlp_normalization()
    features = np.array([[0, 10, 20, 30], [1, 2, 3, 4]], np.float32)
    expected = tf.nn.softmax(mlp({"features": (features - mean) / np.where(std == 0, 1, std)}))
    np.testing.assert_allclose(_cli_result(ran.stdout, "probabilities").reshape(2, 3), expected,
                               atol=1e-5)


def test_encoder_export_has_sequence_and_pooled_outputs(export_root):
    encoder = tiny.build_encoder()
    path = saved_model.export_encoder(encoder, export_base=str(export_root / "enc"),
                                      model_name="bert_tiny", verify=False)
    metadata = _metadata(path)
    ids = tf.constant([[2, 5, 6, 3, 0]], tf.int32)
    inputs = {"token_ids": ids, "padding_mask": tf.cast(ids != 0, tf.int32),
              "segment_ids": tf.zeros_like(ids)}
    outputs = saved_model.load_servable(path).signature()(**inputs)
    expected = encoder(inputs)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(outputs[key], expected[key], atol=1e-5)
    assert metadata["signatures"]["serving_default"]["outputs"] == {
        "pooled_output": ["float32", [None, 16]],
        "sequence_output": ["float32", [None, None, 16]]}


# --- layout, failure modes -------------------------------------------------------------------


def _export_mlp_unverified(mlp, base, **kwargs):
    mean, std = tiny.mlp_normalization()
    return saved_model.export_mlp(mlp, mean=mean, std=std, class_names=["a", "b", "c"],
                                  export_base=str(base), model_name="m", verify=False, **kwargs)


def test_versions_auto_increment_and_skip_temp_dirs(tmp_path, mlp):
    assert _export_mlp_unverified(mlp, tmp_path).endswith(os.path.join("m", "1"))
    assert _export_mlp_unverified(mlp, tmp_path).endswith(os.path.join("m", "2"))
    os.makedirs(tmp_path / "m" / "7" / "keep")
    os.makedirs(tmp_path / "m" / ".tmp-crashed")
    path = _export_mlp_unverified(mlp, tmp_path)
    assert path.endswith(os.path.join("m", "8"))
    assert os.listdir(tmp_path / "m" / "7") == ["keep"]  # never overwritten
    assert saved_model.list_versions(str(tmp_path / "m")) == [1, 2, 7, 8]
    assert saved_model.resolve_version_dir(str(tmp_path / "m")) == path
    assert saved_model.resolve_version_dir(str(tmp_path)) == path


@pytest.mark.parametrize("failing_step", ["_write_savedmodel", "_write_extra_assets"])
def test_interrupted_export_leaves_no_version(tmp_path, mlp, monkeypatch, failing_step):
    original = getattr(saved_model, failing_step)

    def write_then_crash(directory, *args):
        original(directory, *args)
        raise KeyboardInterrupt("simulated crash mid-export")

    monkeypatch.setattr(saved_model, failing_step, write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _export_mlp_unverified(mlp, tmp_path)
    assert os.listdir(tmp_path / "m") == []


def test_export_disagreeing_with_in_memory_model_fails(tmp_path, monkeypatch):
    model = tiny.build_mlp(seed=3)
    original = saved_model._write_savedmodel

    def perturb_then_write(archive, directory):
        kernel = model.get_layer("logits").kernel
        kernel.assign(kernel * 3.0)  # saved weights now differ from the traced reference
        original(archive, directory)

    monkeypatch.setattr(saved_model, "_write_savedmodel", perturb_then_write)
    mean, std = tiny.mlp_normalization()
    with pytest.raises(saved_model.ExportVerificationError, match=r"differs .* > atol 1e-05"):
        saved_model.export_mlp(model, mean=mean, std=std, class_names=["a", "b", "c"],
                               export_base=str(tmp_path), model_name="m")
    assert os.listdir(tmp_path / "m") == []


def test_bf16_models_get_documented_tolerance():
    model = tiny.build_classifier(dtype="mixed_bfloat16")
    assert saved_model.compute_dtype(model) == "bfloat16"
    assert saved_model.resolve_atol(model, None) == saved_model.LOW_PRECISION_ATOL == 1e-2
    assert saved_model.resolve_atol(tiny.build_mlp(), None) == saved_model.FLOAT32_ATOL


@pytest.mark.slow
def test_bf16_classifier_export_verifies_with_bf16_tolerance(tmp_path, vocab_path):
    model = tiny.build_classifier(dtype="mixed_bfloat16")
    path = saved_model.export_text_classifier(
        model, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
        class_names=tiny.CLASS_NAMES, export_base=str(tmp_path), model_name="bf16")
    metadata = _metadata(path)
    assert metadata["compute_dtype"] == "bfloat16"
    assert metadata["verification"]["atol"] == 1e-2 and metadata["verification"]["passed"]


def test_export_argument_errors(tmp_path, vocab_path, classifier, mlp):
    with pytest.raises(saved_model.ExportError, match="class_names has 3 names .* 2 logits"):
        saved_model.export_text_classifier(
            classifier, vocab_path=vocab_path, sequence_length=8, lowercase=True,
            class_names=["a", "b", "c"], export_base=str(tmp_path), model_name="x")
    with pytest.raises(saved_model.ExportError, match="vocab_path 'missing.txt' is not a file"):
        saved_model.export_text_classifier(
            classifier, vocab_path="missing.txt", sequence_length=8, lowercase=True,
            class_names=tiny.CLASS_NAMES, export_base=str(tmp_path), model_name="x")
    with pytest.raises(saved_model.ExportError, match="model_name='.tmp' invalid"):
        saved_model.export_mlp(
            mlp, mean=[0.0] * 4, std=[1.0] * 4, class_names=["a", "b", "c"],
            export_base=str(tmp_path), model_name=".tmp")
    with pytest.raises(saved_model.ExportError, match="mean shape"):
        saved_model.export_mlp(mlp, mean=[0.0] * 4, std=[1.0] * 3, class_names=["a", "b", "c"],
                               export_base=str(tmp_path), model_name="x")


def test_load_servable_errors(tmp_path):
    with pytest.raises(saved_model.ExportError, match="is not a directory"):
        saved_model.load_servable(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "a" / "1")
    os.makedirs(tmp_path / "b" / "1")
    with pytest.raises(saved_model.ExportError, match=r"several models \(a, b\)"):
        saved_model.resolve_version_dir(str(tmp_path))


@pytest.mark.slow
def test_project_models_export_and_verify(tmp_path, vocab_path):
    from tfmodels import models

    encoder = models.build_bert_encoder("tiny", vocabulary_size=tiny.vocabulary_size(),
                                        max_sequence_length=tiny.SEQUENCE_LENGTH)
    classifier = models.build_bert_classifier(encoder, num_classes=2, pooling="mean")
    path = saved_model.export_text_classifier(
        classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
        class_names=tiny.CLASS_NAMES, export_base=str(tmp_path), model_name="bert",
        verify_texts=VERIFY_TEXTS)
    assert _metadata(path)["verification"]["passed"]
    mlp = models.build_mlp((4,), [8], num_classes=3)
    mean, std = tiny.mlp_normalization()
    path = saved_model.export_mlp(mlp, mean=mean, std=std, class_names=["a", "b", "c"],
                                  export_base=str(tmp_path), model_name="mlp")
    assert _metadata(path)["verification"]["passed"]
