"""Tests for freezing, head replacement, top-k / gradual unfreezing and LoRA."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import (GradualUnfreezer, ParamCount, apply_lora, build_bert_classifier,
                             build_bert_pretrainer, build_mlp, count_params, find_encoder,
                             freeze_base, load_lora_weights, merge_lora, replace_head,
                             save_lora_weights, unfreeze_all, unfreeze_top_k)


def _snapshot(model):
    return {id(variable): (variable.path, variable.numpy().copy()) for variable in model.weights}


def _train_one_step(model, features, labels):
    """One plain GradientTape + Adam step; every trainable weight must get a gradient."""
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    with tf.GradientTape() as tape:
        logits = model(features, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert all(gradient is not None for gradient in gradients)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights))


def _changed_paths(model, before):
    after = _snapshot(model)
    return {path for key, (path, value) in before.items()
            if not np.array_equal(value, after[key][1])}


def _check_only_trainable_changed(model, features, labels, steps=1):
    trainable = {variable.path for variable in model.trainable_weights}
    before = _snapshot(model)
    for _ in range(steps):
        _train_one_step(model, features, labels)
    assert _changed_paths(model, before) == trainable


def _labels(batch):
    return np.arange(len(batch["token_ids"])) % 2


def _head_params(hidden, classes=2):
    return hidden * classes + classes


def test_count_params_matches_keras(tiny_encoder):
    model = build_bert_classifier(tiny_encoder, num_classes=2)
    count = count_params(model)
    assert isinstance(count, ParamCount)
    assert count == ParamCount(model.count_params(), model.count_params())
    assert "trainable" in str(count) and count.frozen == 0


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_freeze_base_bert(tiny_encoder, text_batch, pooling):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling=pooling, dropout=0.0)
    count = freeze_base(model)
    assert count.trainable == _head_params(32)
    assert count.total == model.count_params()
    batch = text_batch()
    _check_only_trainable_changed(model, batch, _labels(batch))


def test_freeze_base_mlp_and_replace_head_10_to_100():
    model = build_mlp((12,), [16, 8], num_classes=10)
    assert freeze_base(model).trainable == 8 * 10 + 10
    features = {"features": np.random.default_rng(0).normal(size=(4, 12)).astype("float32")}
    _check_only_trainable_changed(model, features, np.array([0, 1, 2, 3]))

    wider = replace_head(model, num_classes=100)
    assert wider(features).shape == (4, 100)
    assert wider.get_layer("trunk_dense_0") is model.get_layer("trunk_dense_0")  # shared trunk
    assert count_params(wider).trainable == 8 * 100 + 100  # trunk stays frozen
    _check_only_trainable_changed(wider, features, np.array([0, 50, 99, 3]))
    assert model(features).shape == (4, 10)  # the old model still works


def test_replace_head_on_bert_shares_encoder(tiny_encoder, text_batch):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling="mean")
    new = replace_head(model, num_classes=5, dropout=0.0, name="five_way")
    assert new.name == "five_way" and new(text_batch()).shape == (3, 5)
    assert find_encoder(new) is tiny_encoder


@pytest.mark.parametrize("pooling, uses_pooler, features", [("cls", True, 32), ("mean", False, 32),
                                                             ("max_mean", False, 64)])
def test_unfreeze_top_k(tiny_encoder, text_batch, pooling, uses_pooler, features):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling=pooling, dropout=0.0)
    layer_params = tiny_encoder.transformer_layers[1].count_params()
    pooler_params = 32 * 32 + 32 if uses_pooler else 0
    assert unfreeze_top_k(model, 0).trainable == pooler_params + _head_params(features)
    count = unfreeze_top_k(model, 1)
    assert count.trainable == layer_params + pooler_params + _head_params(features)
    trainable = {variable.path for variable in model.trainable_weights}
    assert all("transformer_layer_0" not in path and "embedding" not in path
               for path in trainable)
    batch = text_batch()
    _check_only_trainable_changed(model, batch, _labels(batch))
    assert unfreeze_all(model).trainable == model.count_params()


def test_unfreeze_top_k_bad_k(tiny_encoder):
    model = build_bert_classifier(tiny_encoder, num_classes=2)
    with pytest.raises(ValueError, match="k=3 is invalid; the encoder has 2 layers, choose 0..2"):
        unfreeze_top_k(model, 3)
    with pytest.raises(ValueError, match="k=-1 is invalid"):
        unfreeze_top_k(model, -1)
    with pytest.raises(ValueError, match="holds 0 BertBackbone"):
        unfreeze_top_k(build_mlp((4,), [4], 2), 1)


def test_gradual_unfreezer_schedule(tiny_encoder):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling="cls")
    unfreezer = GradualUnfreezer(model, every=2)
    counts = [count_params(model).trainable]
    changes = []
    for boundary in range(1, 9):
        changes.append(unfreezer.update(boundary))
        counts.append(count_params(model).trainable)
    assert changes == [False, True, False, True, False, True, False, False]
    assert counts[0] < counts[2] < counts[4] < counts[6] == model.count_params()
    assert unfreezer.stage == 3
    with pytest.raises(ValueError, match="every=0 is invalid"):
        GradualUnfreezer(model, every=0)


def test_freeze_base_pretrainer_trains_only_mlm_head(tiny_encoder, text_batch):
    model = build_bert_pretrainer(tiny_encoder)
    count = freeze_base(model)
    # dense + layer norm + output bias; the tied embedding stays frozen.
    assert count.trainable == 32 * 32 + 32 + 2 * 32 + tiny_encoder.vocabulary_size


def _lora_params(encoder, rank):
    hidden, heads = encoder.hidden_dim, encoder.num_heads
    per_projection = hidden * heads * rank + rank * (hidden // heads)
    return encoder.num_layers * 2 * per_projection


def test_lora_trains_only_lora_and_head(tiny_encoder, text_batch):
    model = build_bert_classifier(tiny_encoder, num_classes=2, pooling="mean", dropout=0.0)
    total_before = model.count_params()
    count = apply_lora(model, rank=4)
    assert count.trainable == _lora_params(tiny_encoder, 4) + _head_params(32)
    assert count.total == total_before + _lora_params(tiny_encoder, 4)
    trainable = {variable.path for variable in model.trainable_weights}
    assert all("lora_kernel" in path or path.startswith("logits/") for path in trainable)
    batch = text_batch()
    # lora_kernel_b starts at zero, so lora_kernel_a gets its first gradient in step 2.
    _check_only_trainable_changed(model, batch, _labels(batch), steps=2)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, rank=4)


def _trained_lora_model(encoder, batch):
    model = build_bert_classifier(encoder, num_classes=2, pooling="mean", dropout=0.0)
    apply_lora(model, rank=2)
    for _ in range(2):
        _train_one_step(model, batch, _labels(batch))
    return model


def test_merge_lora_keeps_outputs(tiny_encoder, text_batch, round_trip):
    batch = text_batch()
    model = _trained_lora_model(tiny_encoder, batch)
    expected = model(batch).numpy()
    np.testing.assert_array_equal(round_trip(model)(batch), expected)
    count = merge_lora(model)
    np.testing.assert_allclose(model(batch), expected, atol=1e-5)
    assert count.total == model.count_params() == round_trip(model, "merged.keras").count_params()
    assert count.trainable == _head_params(32)
    with pytest.raises(ValueError, match="has no LoRA layers"):
        merge_lora(model)


def test_save_and_load_lora_weights_alone(tiny_encoder, text_batch, tmp_path):
    batch = text_batch()
    base_weights = tiny_encoder.get_weights()
    model = _trained_lora_model(tiny_encoder, batch)
    path = tmp_path / "adapter.lora.h5"
    save_lora_weights(model, path)

    fresh = type(tiny_encoder).from_config(tiny_encoder.get_config())
    fresh.set_weights(base_weights)
    other = build_bert_classifier(fresh, num_classes=2, pooling="mean", dropout=0.0)
    other.get_layer("logits").set_weights(model.get_layer("logits").get_weights())
    load_lora_weights(other, path)
    np.testing.assert_allclose(other(batch), model(batch), atol=1e-6)
    with pytest.raises(ValueError, match="must end in '.lora.h5'"):
        save_lora_weights(model, tmp_path / "adapter.h5")


def test_freeze_base_needs_a_head():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    with pytest.raises(ValueError, match="has no head layer"):
        freeze_base(model)
    with pytest.raises(ValueError, match="has no 'head_dropout' layer"):
        replace_head(model, 3)
