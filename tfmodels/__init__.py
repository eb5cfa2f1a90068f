"""tfmodels: develop large TensorFlow/Keras models from scratch and fine-tune them.

Sub-packages (imported on first use, so `import tfmodels` stays cheap):
    tfmodels.config    typed YAML experiments
    tfmodels.data      sources, embedded datasets, vocabulary, tf.data pipelines
    tfmodels.models    MLP, BERT (encoder, classifier, masked-LM), LSTM; fine-tuning; pretrained loading
    tfmodels.training  strategies, precision, optimizers, metrics, the Trainer
    tfmodels.export    SavedModel export for TensorFlow Serving, verification, predict
    tfmodels.tasks     one function per command-line binary
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("config", "data", "models", "training", "export", "tasks")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfmodels.{name}")
    raise AttributeError(f"module 'tfmodels' has no attribute {name!r}")


__all__ = list(_SUBPACKAGES)
