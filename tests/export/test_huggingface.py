"""Hugging Face export: config/safetensors/vocab a `transformers` BERT directory loads from.

Outputs are compared with the Keras model through this package's loader and keras-hub always,
and through transformers + torch when both are installed (the benchmark extra).
"""
import json
import os
import subprocess
import sys

import keras_hub
import numpy as np
import pytest
from safetensors.numpy import load_file

import export_tiny_models as tiny

from tfmodels import models
from tfmodels.config import ConfigError, load_config
from tfmodels.export import ExportError, ExportVerificationError, hf_tokenizer, huggingface
from tfmodels.export.hf_tokenizer import PROBE_TEXTS
from tfmodels.tasks import export as export_task
from tfmodels.tasks import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOL = 1e-5


@pytest.fixture(scope="module")
def encoder():
    return models.build_bert_encoder("tiny", vocabulary_size=tiny.vocabulary_size(),
                                     max_sequence_length=16, num_layers=2, hidden_dim=16,
                                     num_heads=2, intermediate_dim=32)


@pytest.fixture(scope="module")
def exported(encoder, tmp_path_factory):
    """{"encoder" | "cls" | "mean" | "max_mean": (model, directory)}, exported once."""
    root = tmp_path_factory.mktemp("hf")
    vocab = tiny.write_vocab(str(root))
    result = {}
    for name in ("encoder", "cls", "mean", "max_mean"):
        model = encoder if name == "encoder" else models.build_bert_classifier(
            encoder, 3, pooling=name)
        directory = huggingface.export_huggingface(
            model, vocab_path=vocab, output_dir=str(root / name), lowercase=True,
            class_names=None if name == "encoder" else ["neg", "neutral", "pos"])
        result[name] = (model, directory)
    return result


def _inputs(encoder):
    return huggingface.sample_token_inputs(encoder, batch=4, length=12, seed=1)


def _keras_logits(model, inputs):
    return np.asarray(model(inputs, training=False), np.float64)


def test_directory_layout_and_config(exported):
    for name, (_, directory) in exported.items():
        files = set(os.listdir(directory))
        assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "tfmodels_export.json"} <= files
        assert ("classifier_head.safetensors" in files) == (name in ("mean", "max_mean"))
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        assert config["model_type"] == "bert" and config["hidden_act"] == "gelu_new"
        assert config["num_hidden_layers"] == 2 and config["vocab_size"] == tiny.vocabulary_size()
        with open(os.path.join(directory, "tfmodels_export.json")) as f:
            assert json.load(f)["verification"]["passed"] is True
        assert tiny.permissions_under_umask(directory) == []
        with open(os.path.join(directory, "tokenizer_config.json")) as f:
            tokenizer_config = json.load(f)
        assert tokenizer_config["strip_accents"] is False  # as keras-hub's BertTokenizer: accents kept
        # transformers takes tokenizer.json as written (a BertTokenizer would rebuild its normalizer)
        assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    cls_config = json.load(open(os.path.join(exported["cls"][1], "config.json")))
    assert cls_config["architectures"] == ["BertForSequenceClassification"]
    assert cls_config["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}
    mean_config = json.load(open(os.path.join(exported["mean"][1], "config.json")))
    assert mean_config["architectures"] == ["BertModel"]
    assert mean_config["tfmodels_pooling"] == "mean"
    max_mean_config = json.load(open(os.path.join(exported["max_mean"][1], "config.json")))
    assert max_mean_config["tfmodels_pooling"] == "max_mean"
    head = load_file(os.path.join(exported["max_mean"][1], "classifier_head.safetensors"))
    assert head["classifier.weight"].shape == (3, 32)  # [C, 2H]: max then mean features
    weights = load_file(os.path.join(exported["cls"][1], "model.safetensors"))
    assert weights["classifier.weight"].shape == (3, 16)
    assert "bert.encoder.layer.1.attention.self.query.weight" in weights


FULL_WIDTH_TEXTS = ["这个电影太坏了！", "Ｇｏｏｄ ｍｏｖｉｅｓ．", "很好……"]


def test_the_exported_tokenizer_json_tokenizes_as_the_model_was_trained(exported):
    tokenizers = pytest.importorskip("tokenizers")
    directory = exported["cls"][1]
    theirs = tokenizers.Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    ours = keras_hub.tokenizers.BertTokenizer(vocabulary=os.path.join(directory, "vocab.txt"), lowercase=True)
    for text in tiny.VERIFY_TEXTS + FULL_WIDTH_TEXTS:
        assert theirs.encode(text, add_special_tokens=False).ids == np.asarray(ours(text)).tolist(), text
    assert theirs.encode("这个电影太坏了！", add_special_tokens=False).tokens[-1] == "!"
    assert theirs.encode("Ｇｏｏｄ ｍｏｖｉｅｓ．", add_special_tokens=False).tokens == ["good", "movie", "##s", "."]


def test_own_loader_reproduces_encoder_and_classifier_outputs(exported, encoder):
    inputs = _inputs(encoder)
    loaded = models.load_encoder(exported["encoder"][1])
    assert loaded.source_format == "huggingface" and loaded.lowercase is True
    expected = encoder(inputs, training=False)
    got = loaded.encoder(inputs, training=False)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[key], expected[key], atol=ATOL)
    for pooling in ("cls", "mean", "max_mean"):
        model, directory = exported[pooling]
        reloaded = models.load_encoder(directory).encoder(inputs, training=False)
        head = load_file(os.path.join(directory, "model.safetensors" if pooling == "cls"
                                      else "classifier_head.safetensors"))
        logits = huggingface.classifier_logits(
            reloaded["sequence_output"], reloaded["pooled_output"], inputs["padding_mask"],
            head["classifier.weight"].T, head["classifier.bias"], pooling)
        np.testing.assert_allclose(logits, _keras_logits(model, inputs), atol=ATOL)


def test_keras_hub_loads_the_export_and_our_encoder_directory(exported, encoder, tmp_path):
    inputs = _inputs(encoder)
    expected = encoder(inputs, training=False)["sequence_output"]
    backbone = keras_hub.models.BertBackbone.from_preset(exported["encoder"][1])
    np.testing.assert_allclose(backbone(inputs)["sequence_output"], expected, atol=ATOL)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(exported["encoder"][1])
    ours = keras_hub.tokenizers.BertTokenizer(
        vocabulary=os.path.join(exported["encoder"][1], "vocab.txt"), lowercase=True)
    for text in tiny.VERIFY_TEXTS:
        assert np.asarray(tokenizer(text)).tolist() == np.asarray(ours(text)).tolist()
    # A pretraining run's encoder/ directory (models.save_encoder) is a keras-hub preset.
    saved = models.save_encoder(encoder, os.path.join(exported["encoder"][1], "vocab.txt"),
                                tmp_path / "encoder", lowercase=True)
    preset = keras_hub.models.BertBackbone.from_preset(saved)
    np.testing.assert_allclose(preset(inputs)["sequence_output"], expected, atol=ATOL)


def test_transformers_and_torch_reproduce_the_outputs(exported, encoder):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    inputs = _inputs(encoder)
    torch_inputs = {"input_ids": torch.tensor(inputs["token_ids"], dtype=torch.long),
                    "attention_mask": torch.tensor(inputs["padding_mask"], dtype=torch.long),
                    "token_type_ids": torch.tensor(inputs["segment_ids"], dtype=torch.long)}
    with torch.no_grad():
        bert = transformers.BertModel.from_pretrained(exported["encoder"][1]).eval()
        out = bert(**torch_inputs)
        expected = encoder(inputs, training=False)
        np.testing.assert_allclose(out.last_hidden_state.numpy(), expected["sequence_output"],
                                   atol=ATOL)
        np.testing.assert_allclose(out.pooler_output.numpy(), expected["pooled_output"], atol=ATOL)
        model, directory = exported["cls"]
        classifier = transformers.BertForSequenceClassification.from_pretrained(directory).eval()
        assert classifier.config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
        np.testing.assert_allclose(classifier(**torch_inputs).logits.numpy(),
                                   _keras_logits(model, inputs), atol=ATOL)
        model, directory = exported["mean"]
        hidden = transformers.BertModel.from_pretrained(directory).eval()(**torch_inputs)
        head = load_file(os.path.join(directory, "classifier_head.safetensors"))
        mask = torch_inputs["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = pooled @ torch.from_numpy(head["classifier.weight"]).T + torch.from_numpy(
            head["classifier.bias"])
        np.testing.assert_allclose(logits.numpy(), _keras_logits(model, inputs), atol=ATOL)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    ours = keras_hub.tokenizers.BertTokenizer(
        vocabulary=os.path.join(directory, "vocab.txt"), lowercase=True)
    for text in tiny.VERIFY_TEXTS + FULL_WIDTH_TEXTS:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == np.asarray(ours(text)).tolist()
    pair = tokenizer("我喜欢", "这个电影")
    assert pair["token_type_ids"] == [0] * 5 + [1] * 5 and len(pair["input_ids"]) == 10


def test_export_refuses_non_bert_models_bad_vocab_and_existing_directories(exported, tmp_path):
    model, directory = exported["cls"]
    vocab = os.path.join(directory, "vocab.txt")
    with pytest.raises(ExportError, match="exists and is not empty"):
        huggingface.export_huggingface(model, vocab_path=vocab, output_dir=directory,
                                       lowercase=True)
    with pytest.raises(ExportError, match="BERT encoders and classifiers only"):
        huggingface.export_huggingface(tiny.build_mlp(), vocab_path=vocab,
                                       output_dir=str(tmp_path / "mlp"), lowercase=True)
    short = tmp_path / "short_vocab.txt"
    short.write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    with pytest.raises(ExportError, match="2 tokens but the encoder's vocabulary_size is"):
        huggingface.export_huggingface(model, vocab_path=str(short),
                                       output_dir=str(tmp_path / "x"), lowercase=True)
    with pytest.raises(ExportError, match="class_names has 2 names but the model outputs 3"):
        huggingface.export_huggingface(model, vocab_path=vocab, output_dir=str(tmp_path / "y"),
                                       lowercase=True, class_names=["a", "b"])
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-hf-")]


def test_export_refuses_a_tokenizer_json_that_tokenizes_otherwise(exported, tmp_path, monkeypatch):
    """Verification tokenizes the probe texts and the caller's with tokenizer.json and the model's tokenizer."""
    pytest.importorskip("tokenizers")
    model, directory = exported["cls"]

    def plain_bert_normalizer(vocabulary, lowercase):  # what transformers' BertTokenizer would do
        spec = hf_tokenizer.tokenizer_json(vocabulary, lowercase)
        spec["normalizer"] = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                              "strip_accents": False, "lowercase": lowercase}
        return spec

    monkeypatch.setattr(huggingface, "tokenizer_json", plain_bert_normalizer)
    with pytest.raises(ExportVerificationError, match=r"from token 5 on, tokenizer.json tokenizes '很好，不错！' as \['\[UNK\]'\], "
                       r"the model's tokenizer as \['!'\]; nothing was written"):
        huggingface.export_huggingface(model, vocab_path=os.path.join(directory, "vocab.txt"),
                                       output_dir=str(tmp_path / "plain"), lowercase=True)
    assert os.listdir(tmp_path) == []  # nothing written
    monkeypatch.undo()
    written = huggingface.export_huggingface(model, vocab_path=os.path.join(directory, "vocab.txt"),
                                             output_dir=str(tmp_path / "ok"), lowercase=True,
                                             verify_texts=FULL_WIDTH_TEXTS)
    with open(os.path.join(written, "tfmodels_export.json")) as f:
        assert json.load(f)["verification"]["tokenizer"] == {
            "library": "tokenizers", "texts": len(PROBE_TEXTS) + 3, "identical": len(PROBE_TEXTS) + 3}


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    """A trained tiny BERT run directory ([CLS] pooling, on the embedded reviews)."""
    model_dir = str(tmp_path_factory.mktemp("run"))
    config = load_config(os.path.join(REPO, "configs", "bert_sentiment_zh.yaml"), [
        "model.variant=tiny", "model.max_sequence_length=32", "data.sequence_length=16",
        "data.limit=64", "data.vocab_size=300", "data.length_buckets=null", "trainer.epochs=1",
        "model.pooling=cls"], model_dir=model_dir)
    train.run(config)
    return model_dir


def test_export_task_writes_a_huggingface_directory(bert_run, tmp_path):
    """What `tfm-export --format=huggingface` runs, on a trained run directory."""
    config = export_task.load_run_config(bert_run, overrides=[
        f"export.export_base={tmp_path}", "export.model_name=sentiment"])
    directory = export_task.run(config, format="huggingface")
    assert directory == str(tmp_path / "sentiment")
    with open(os.path.join(directory, "config.json")) as f:
        hf_config = json.load(f)
    assert hf_config["architectures"] == ["BertForSequenceClassification"]
    assert set(hf_config["label2id"]) == {"negative", "positive"}
    assert "tfmodels_truncation" not in hf_config  # head-only, as transformers tokenizers cut
    with open(os.path.join(directory, "tokenizer_config.json")) as f:  # truncation=True cuts as the run trained
        assert json.load(f)["model_max_length"] == config.data.sequence_length < hf_config["max_position_embeddings"]
    loaded = models.load_encoder(directory)
    assert loaded.encoder.num_layers == 2 and loaded.vocab_path == os.path.join(directory, "vocab.txt")
    with open(os.path.join(directory, "tfmodels_export.json")) as f:  # the run's own reviews tokenized both ways
        tokenizer_record = json.load(f)["verification"]["tokenizer"]
    assert tokenizer_record["texts"] == len(PROBE_TEXTS) + config.export.verify_examples == tokenizer_record["identical"]
    with pytest.raises(ConfigError, match="--format='onnx' unknown; choose one of saved_model"):
        export_task.run(config, format="onnx")


def test_huggingface_export_records_a_head_tail_truncation(bert_run, tmp_path):
    config = export_task.load_run_config(bert_run, overrides=[
        f"export.export_base={tmp_path}", "export.model_name=sentiment", "data.truncation=head_tail"])
    with open(os.path.join(export_task.run(config, format="huggingface"), "config.json")) as f:
        hf_config = json.load(f)
    assert hf_config["tfmodels_truncation"] == {"truncation": "head_tail", "head_tokens": 3,
                                                "sequence_length": 16}


def test_huggingface_export_verifies_with_the_configs_tolerance(bert_run, tmp_path):
    config = export_task.load_run_config(bert_run, overrides=[
        f"export.export_base={tmp_path}", "export.model_name=tight", "export.verify_atol=1e-12"])
    with pytest.raises(ExportError, match=r"differs from the model by .* > atol 1e-12; nothing was written"):
        export_task.run(config, format="huggingface")
    assert not os.path.exists(tmp_path / "tight")


def test_export_binary_format_flag(bert_run, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    command = [sys.executable, "-m", "trainers.export", f"--model_dir={bert_run}",
               "--format=huggingface", f"--export_base={tmp_path}", "--model_name=sentiment"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "sentiment" / "model.safetensors")
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600, check=False)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr
