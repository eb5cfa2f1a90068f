"""Exported SavedModel (raw-string signature) latency and throughput vs keras-hub `predict`.

Both sides run the same BERT-mini classifier weights (float32) and tokenize raw strings in
the graph: the export through `tfmodels.export.export_text_classifier` loaded with
`load_servable`, keras-hub through a `BertTextClassifier` on the same backbone with a
`BertTextClassifierPreprocessor` (the in-memory Keras model + tokenizer), called with `predict`.
"""
from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common
from benchmarks.common import percentile


def _latencies(call, inputs, repeats):
    seconds = []
    for index in range(repeats):
        started = time.perf_counter()
        call(inputs[index % len(inputs)])
        seconds.append(time.perf_counter() - started)
    return seconds


def _latency_summary(seconds):
    return {"p50_ms": 1e3 * percentile(seconds, 50), "p99_ms": 1e3 * percentile(seconds, 99),
            "calls": len(seconds)}


def _throughput(call, batches, repeats):
    started = time.perf_counter()
    examples = 0
    for index in range(repeats):
        batch = batches[index % len(batches)]
        call(batch)
        examples += len(batch)
    return examples / (time.perf_counter() - started)


def _serving_paths(assets, workdir, size, sequence_length, batch_size):
    """(export_call, keras_call): texts -> probabilities through the exported SavedModel and
    through keras-hub `predict`, the same weights on both."""
    import keras_hub

    from tfmodels.export import export_text_classifier, load_servable
    from tfmodels.models import build_bert_classifier, build_bert_encoder

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=assets.vocab_path, lowercase=True)
    encoder = build_bert_encoder("mini", vocabulary_size=tokenizer.vocabulary_size(),
                                 max_sequence_length=512, **size.encoder_kwargs())
    model = build_bert_classifier(encoder, common.NUM_CLASSES)
    export_dir = export_text_classifier(
        model, vocab_path=assets.vocab_path, sequence_length=sequence_length, lowercase=True,
        class_names=["negative", "positive"], export_base=os.path.join(workdir, "exports"),
        model_name="bench", verify=False)
    servable = load_servable(export_dir)
    signature = servable.signature()

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length)
    keras_classifier = keras_hub.models.BertTextClassifier(
        backbone=encoder, num_classes=common.NUM_CLASSES, preprocessor=preprocessor)
    # Same weights as the exported model: the backbone is shared, copy the head.
    keras_classifier.output_dense.set_weights(model.get_layer("logits").get_weights())

    def export_call(batch):
        return signature(text=tf.constant(batch))["probabilities"].numpy()

    export_call.servable = servable  # the signature runs on the loaded SavedModel: keep it alive

    def keras_call(batch):
        return keras_classifier.predict(np.array(batch, dtype=object), batch_size=batch_size,
                                        verbose=0)

    return export_call, keras_call


def _measure_path(call, singles, batches, throughput_inputs, warmup, latency_calls):
    """Batch-1 latency over `singles` after `warmup` untimed calls; then, after one untimed
    call on `batches[0]`, examples/s over `throughput_inputs`."""
    _latencies(call, singles, warmup)
    latency = _latency_summary(_latencies(call, singles, latency_calls))
    call(batches[0])
    return dict(latency, examples_per_s=_throughput(call, throughput_inputs,
                                                    len(throughput_inputs)))


def measure_serving(assets, workdir, size=common.SIZES["mini"], sequence_length=128,
                    latency_calls=100, throughput_batches=20, batch_size=64, warmup=3,
                    keras_latency_calls=20):
    """Measures batch-1 latency (p50/p99) and batch-64 throughput of both serving paths.

    Args:
        assets: pipeline.TextAssets. Texts (training reviews) and vocab.txt.
        workdir: str. Export base directory.
        size: common.ModelSize. Defaults to mini.
        sequence_length: int. Defaults to 128.
        latency_calls: int. Timed batch-1 calls. Defaults to 100.
        throughput_batches: int. Timed batches of `batch_size`. Defaults to 20.
        batch_size: int. Defaults to 64.
        warmup: int. Untimed calls of each shape first. Defaults to 3.
        keras_latency_calls: int. Timed batch-1 `predict` calls (each costs about a second
            of set-up). Defaults to 20.
    """
    export_call, keras_call = _serving_paths(assets, workdir, size, sequence_length, batch_size)
    texts = list(assets.train.texts)
    singles = [[text] for text in texts[:max(latency_calls, warmup)]]
    batches = [texts[i:i + batch_size] for i in range(0, batch_size * throughput_batches,
                                                      batch_size)]
    reference = keras.ops.softmax(keras_call(batches[0][:4])).numpy()
    agreement = float(np.max(np.abs(export_call(batches[0][:4]) - reference)))
    results = {"size": size.name, "sequence_length": sequence_length, "batch_size": batch_size,
               "max_abs_probability_difference": agreement}
    # Throughput: the export is called once per batch of 64 (as a client would); keras-hub
    # `predict` once over all texts with batch_size=64 (its per-call set-up paid once).
    everything = [sum(batches, [])]
    for name, call, throughput_inputs, calls in (
            ("savedmodel", export_call, batches, latency_calls),
            ("keras_hub_predict", keras_call, everything, min(latency_calls, keras_latency_calls))):
        results[name] = _measure_path(call, singles, batches, throughput_inputs, warmup, calls)
    return results
