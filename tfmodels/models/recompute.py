"""Activation recomputation: transformer layers recomputed in the backward pass.

Training keeps every intermediate tensor of the forward pass for the backward pass; in a BERT
layer at length 512 those are mostly the attention scores, probabilities and dropout masks,
[B, heads, L, L] each. With recomputation a layer keeps only its input: its forward pass runs
again, layer by layer, while the gradients are computed (`keras.remat`, which is
`tf.recompute_grad` on the TensorFlow backend). Memory for activations falls to about one
layer's worth plus one [B, L, H] tensor per layer, for one more forward pass per step.

Dropout: a recomputed forward pass must draw the same masks as the first one, or the gradients
belong to another network. Keras dropout (and `tfmodels.training.dropout`) draws masks from each
layer's `SeedGenerator`, which advances its state on every draw; Keras' own `RematScope` leaves
it advancing, so the recomputed layer drops other units. Here each layer's seed states are read
before its forward pass and written back before the recomputation, which then draws the same
masks and leaves the states where the first pass did: gradients and the random stream are those
of the plain model (tests/models/test_recompute.py). The write-back waits for the layer's input
in the backward pass; without that, every layer's masks were drawn right after the forward pass
and held until used: BERT-base, batch 4 × 512, bf16 peaked with 1,724 instead of 1,269 MiB of
activations (benchmarks/recompute.py).

Not recomputed: the top layer where `PooledEncoderOutput` / `SequenceOutputAt` compute it at the
read positions only (its keys and values at every position are kept), and the embeddings.

Only the layers' `call` changes, on this model object, at run time: weights, configs, `.keras`
files and exports are untouched, and a reloaded model does not recompute until told to.
"""
from __future__ import annotations

import types

import keras
import keras_hub
import tensorflow as tf

from tfmodels.choices import RECOMPUTE as RECOMPUTE_MODES

_FLAG = "_tfmodels_recompute"


def _recomputed_layers(model) -> list:
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, keras_hub.layers.TransformerEncoder)]


def _seed_generators(layer) -> list:
    """The SeedGenerators of `layer` and its sublayers (the dropout RNG states), each once."""
    found = []
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(sublayer, "_seed_generators", []):
            if all(generator is not seen for seen in found):
                found.append(generator)
    return found


def _recomputed_call(layer, inputs, padding_mask=None, attention_mask=None, training=None,
                     return_attention_scores=False):
    """`TransformerEncoder.call`, recomputed in the backward pass when training with the flag on."""
    call = type(layer).call
    if not (training and getattr(layer, _FLAG, False)) or return_attention_scores:
        return call(layer, inputs, padding_mask=padding_mask, attention_mask=attention_mask,
                    training=training, return_attention_scores=return_attention_scores)
    generators = _seed_generators(layer)
    # The states before the first forward pass; `* 1` copies the value out of the variable.
    states = [generator.state.value * 1 for generator in generators]

    def forward(x):
        # After x: in the backward pass x depends on the incoming gradient, so the recomputed
        # layer's dropout masks are drawn when it runs, not all at once right after the forward
        # pass (their shapes are known when tracing, so nothing else would hold them back).
        with tf.control_dependencies([x]):
            for generator, state in zip(generators, states):
                generator.state.assign(state)
        return call(layer, x, padding_mask=padding_mask, attention_mask=attention_mask,
                    training=training)

    return keras.remat(forward)(inputs)


def set_recompute(model: keras.layers.Layer, mode: str) -> int:
    """Turns activation recomputation of the model's transformer layers on ("layers") or off.

    With "layers", every `keras_hub.layers.TransformerEncoder` inside `model` (the BERT
    encoder's layers, also where `PooledEncoderOutput` / `SequenceOutputAt` call them) keeps
    only its input during training and is recomputed in the backward pass, with the same
    dropout masks. Inference and `training=False` calls are unchanged. A run-time setting of
    this model object: nothing is saved with the model. Call it before the first training step
    is traced (the Trainer traces on its first `fit` step).

    Args:
        model: keras.Model or keras.layers.Layer. A BERT classifier, pretrainer or encoder.
        mode: str. "layers" to recompute each transformer layer, "none" to store activations
            as usual.

    Returns:
        int. Number of transformer layers set.

    Raises:
        ValueError: unknown mode, or "layers" for a model without transformer layers.

    Example:
        >>> model = build_bert_classifier(build_bert_encoder("base", vocabulary_size=21128), 2)
        >>> set_recompute(model, "layers")
        12
    """
    if mode not in RECOMPUTE_MODES:
        raise ValueError(f"recompute={mode!r} unknown; choose one of {', '.join(RECOMPUTE_MODES)}")
    layers = _recomputed_layers(model)
    if mode == "layers" and not layers:
        raise ValueError(f"recompute='layers' needs transformer layers and model {model.name!r} "
                         "has none; choose recompute 'none' for it")
    for layer in layers:
        if not isinstance(layer.call, types.MethodType) or layer.call.__func__ is not _recomputed_call:
            layer.call = types.MethodType(_recomputed_call, layer)
        setattr(layer, _FLAG, mode == "layers")
    return len(layers)


def recompute_mode(model: keras.layers.Layer) -> str:
    """The recompute mode set on `model` by `set_recompute`: "layers" or "none".

    Args:
        model: keras.Model or keras.layers.Layer.
    """
    layers = _recomputed_layers(model)
    return "layers" if layers and all(getattr(l, _FLAG, False) for l in layers) else "none"
