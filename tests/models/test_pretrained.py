"""Tests for loading encoders from keras-hub presets, Hugging Face dirs and .keras files."""
import json

import keras_hub
import numpy as np
import pytest
from safetensors.numpy import save_file

from tfmodels.models import build_bert_classifier
from tfmodels.models.pretrained import (LoadedEncoder, check_sequence_length, load_encoder,
                                        save_encoder)

from model_test_data import VOCAB_SIZE

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "source_vocab.txt"
    words = [f"w{i}" for i in range(VOCAB_SIZE - len(SPECIAL_TOKENS))]
    path.write_text("\n".join(SPECIAL_TOKENS + words) + "\n", encoding="utf-8")
    return path


def _encoder_outputs(encoder, batch):
    outputs = encoder(batch)
    return outputs["sequence_output"].numpy(), outputs["pooled_output"].numpy()


def _assert_same_outputs(a, b, batch, atol=0.0):
    for left, right in zip(_encoder_outputs(a, batch), _encoder_outputs(b, batch)):
        np.testing.assert_allclose(left, right, atol=atol, rtol=0)


def _hf_state_dict(encoder, prefix="bert."):
    """Maps BertBackbone weights to Hugging Face BertModel parameter names."""
    hidden = encoder.hidden_dim

    state = {
        "embeddings.word_embeddings.weight": encoder.token_embedding.embeddings.numpy(),
        "embeddings.position_embeddings.weight":
            encoder.position_embedding.position_embeddings.numpy(),
        "embeddings.token_type_embeddings.weight": encoder.segment_embedding.embeddings.numpy(),
        "embeddings.LayerNorm.weight": encoder.embeddings_layer_norm.gamma.numpy(),
        "embeddings.LayerNorm.bias": encoder.embeddings_layer_norm.beta.numpy(),
        "pooler.dense.weight": encoder.pooled_dense.kernel.numpy().T,
        "pooler.dense.bias": encoder.pooled_dense.bias.numpy(),
    }
    for i, block in enumerate(encoder.transformer_layers):
        attention = block._self_attention_layer
        name = f"encoder.layer.{i}."
        for hf, dense in (("attention.self.query", attention.query_dense),
                          ("attention.self.key", attention.key_dense),
                          ("attention.self.value", attention.value_dense)):
            state[name + hf + ".weight"] = dense.kernel.numpy().reshape(hidden, hidden).T
            state[name + hf + ".bias"] = dense.bias.numpy().reshape(hidden)
        output = attention.output_dense
        state[name + "attention.output.dense.weight"] = (
            output.kernel.numpy().reshape(hidden, hidden).T)
        state[name + "attention.output.dense.bias"] = output.bias.numpy()
        for hf, norm in (("attention.output.LayerNorm", block._self_attention_layer_norm),
                         ("output.LayerNorm", block._feedforward_layer_norm)):
            state[name + hf + ".weight"] = norm.gamma.numpy()
            state[name + hf + ".bias"] = norm.beta.numpy()
        for hf, dense in (("intermediate.dense", block._feedforward_intermediate_dense),
                          ("output.dense", block._feedforward_output_dense)):
            state[name + hf + ".weight"] = dense.kernel.numpy().T
            state[name + hf + ".bias"] = dense.bias.numpy()
    return {prefix + key: np.ascontiguousarray(value, dtype="float32")
            for key, value in state.items()}


def _write_hf_dir(encoder, directory, vocab_file, lowercase=False):
    directory.mkdir()
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": encoder.vocabulary_size, "hidden_size": encoder.hidden_dim,
        "num_hidden_layers": encoder.num_layers, "num_attention_heads": encoder.num_heads,
        "intermediate_size": encoder.intermediate_dim,
        "max_position_embeddings": encoder.max_sequence_length, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    (directory / "vocab.txt").write_text(vocab_file.read_text())
    save_file(_hf_state_dict(encoder), str(directory / "model.safetensors"))


def test_own_format_round_trip(tiny_encoder, text_batch, vocab_file, tmp_path):
    directory = tmp_path / "pretrained"
    save_encoder(tiny_encoder, vocab_file, directory, lowercase=True)
    assert (directory / "vocab.txt").read_text() == vocab_file.read_text()
    loaded = load_encoder(directory)
    assert isinstance(loaded, LoadedEncoder)
    assert loaded.source_format == "keras_hub_preset"
    assert loaded.vocab_path == str(directory / "vocab.txt")
    assert loaded.lowercase is True
    _assert_same_outputs(tiny_encoder, loaded.encoder, text_batch())
    # Also a valid keras-hub preset for keras-hub itself.
    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(directory))
    assert tokenizer.vocabulary_size() == VOCAB_SIZE


def test_save_encoder_from_tokenizer(tiny_encoder, vocab_file, tmp_path):
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=str(vocab_file), lowercase=True)
    loaded = load_encoder(save_encoder(tiny_encoder, tokenizer, tmp_path / "out"))
    assert loaded.lowercase is True


def test_plain_keras_hub_preset(tiny_encoder, text_batch, tmp_path):
    directory = tmp_path / "preset"
    tiny_encoder.save_to_preset(str(directory))
    loaded = load_encoder(directory)
    assert (loaded.source_format, loaded.vocab_path, loaded.lowercase) == (
        "keras_hub_preset", None, False)
    _assert_same_outputs(tiny_encoder, loaded.encoder, text_batch())


def test_huggingface_dir(tiny_encoder, text_batch, vocab_file, tmp_path):
    directory = tmp_path / "hf_bert"
    _write_hf_dir(tiny_encoder, directory, vocab_file, lowercase=False)
    loaded = load_encoder(directory)
    assert loaded.source_format == "huggingface"
    assert loaded.vocab_path == str(directory / "vocab.txt")
    assert loaded.lowercase is False
    assert loaded.encoder.num_layers == tiny_encoder.num_layers
    _assert_same_outputs(tiny_encoder, loaded.encoder, text_batch(), atol=1e-5)


def test_an_uncased_huggingface_dir_warns_where_lowercasing_differs_from_transformers(
        tiny_encoder, vocab_file, tmp_path):
    lines = vocab_file.read_text(encoding="utf-8").splitlines()
    lines[5:8] = ["，", "！", "##Ａ"]  # full-width forms: NFKC folds them, transformers keeps them
    vocab_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    directory = tmp_path / "hf_uncased"
    _write_hf_dir(tiny_encoder, directory, vocab_file, lowercase=True)
    with pytest.warns(UserWarning) as caught:
        assert load_encoder(directory).lowercase is True
    message = str(caught[0].message)
    assert message.startswith(f"{directory / 'tokenizer_config.json'}: do_lower_case is true;")
    assert "never produces 3 of its" in message and "'，'" in message and "'##Ａ'" in message
    assert "accents are kept" in message  # transformers strips them unless strip_accents is false
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "strip_accents": False}))
    with pytest.warns(UserWarning, match="never produces 3") as caught:
        load_encoder(directory)
    assert "accents" not in str(caught[0].message)


def test_a_cased_or_folded_huggingface_dir_loads_without_a_warning(tiny_encoder, vocab_file, tmp_path):
    import warnings
    cased = tmp_path / "hf_cased"
    _write_hf_dir(tiny_encoder, cased, vocab_file, lowercase=False)
    folded = tmp_path / "hf_folded"  # as this package's export writes it: folded vocabulary, accents kept
    _write_hf_dir(tiny_encoder, folded, vocab_file, lowercase=True)
    (folded / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "strip_accents": False}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_encoder(cased)
        load_encoder(folded)


def test_keras_classifier_file(tiny_encoder, text_batch, vocab_file, tmp_path):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling="mean")
    model.save(tmp_path / "model.keras")
    (tmp_path / "vocab.txt").write_text(vocab_file.read_text())
    for path in (tmp_path / "model.keras", tmp_path):
        loaded = load_encoder(path)
        assert loaded.source_format == "keras_model"
        assert loaded.vocab_path == str(tmp_path / "vocab.txt")
        _assert_same_outputs(tiny_encoder, loaded.encoder, text_batch())


def test_unknown_path_lists_what_was_looked_for(tmp_path):
    with pytest.raises(ValueError, match="no pretrained encoder found; looked for a keras-hub "
                                         "preset dir .*Hugging Face BERT dir.*\\.keras model"):
        load_encoder(tmp_path)
    with pytest.raises(ValueError, match="no pretrained encoder found"):
        load_encoder(tmp_path / "missing")


def test_incomplete_or_foreign_dirs(tmp_path):
    hf = tmp_path / "roberta"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ValueError, match="model_type='roberta' unsupported; expected 'bert'"):
        load_encoder(hf)
    (hf / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="no weights; looked for model.safetensors"):
        load_encoder(hf)


def test_save_encoder_bad_vocabulary(tiny_encoder, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("\n".join(SPECIAL_TOKENS) + "\n")
    with pytest.raises(ValueError, match="vocabulary has 5 tokens but the encoder's "
                                         "vocabulary_size is 64"):
        save_encoder(tiny_encoder, short, tmp_path / "out")
    with pytest.raises(ValueError, match="is not a file"):
        save_encoder(tiny_encoder, tmp_path / "nope.txt", tmp_path / "out")


def test_check_sequence_length(tiny_encoder):
    check_sequence_length(tiny_encoder, 16)
    with pytest.raises(ValueError,
                       match="sequence_length=17 is invalid; this encoder allows 1..16"):
        check_sequence_length(tiny_encoder, 17)
