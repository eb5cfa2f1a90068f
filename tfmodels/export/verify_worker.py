"""Reloads a SavedModel the way TensorFlow Serving would and runs one signature on saved inputs.

Run as a script (by file path, so no `tfmodels` package code is imported):

    python tfmodels/export/verify_worker.py EXPORT_DIR SIGNATURE INPUTS.npz OUTPUTS.npz RESULT.json

It imports only TensorFlow (then tensorflow_text, for the tokenizer ops), so it proves the
export works without the Python model code. Before importing tensorflow_text it lists the ops
in the graph that core TensorFlow does not know: the custom ops a server must load.

Writes `OUTPUTS.npz` (one array per signature output; strings as unicode) and `RESULT.json`
(`custom_ops`, `custom_op_libraries`, `signatures` with input/output dtypes and shapes).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402


def graph_op_names(export_dir):
    """Returns the sorted op type names used by all graphs and functions of a SavedModel.

    Args:
        export_dir: str. SavedModel directory (holds saved_model.pb).
    """
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return sorted(ops)


def unregistered_ops(op_names):
    """Returns the op names that the op registry of this process does not know.

    Args:
        op_names: list of str. Op type names.
    """
    return [name for name in op_names if op_def_registry.get(name) is None]


def describe_signatures(loaded):
    """Returns {signature: {"inputs": {name: [dtype, shape]}, "outputs": {...}}}.

    Args:
        loaded: object returned by tf.saved_model.load.
    """
    described = {}
    for name, function in loaded.signatures.items():
        _, input_specs = function.structured_input_signature
        described[name] = {
            "inputs": {key: [spec.dtype.name, spec.shape.as_list()]
                       for key, spec in sorted(input_specs.items())},
            "outputs": {key: [spec.dtype.name, spec.shape.as_list()]
                        for key, spec in sorted(function.structured_outputs.items())},
        }
    return described


def to_numpy(tensor):
    """Returns a numpy array; string tensors become unicode arrays.

    Args:
        tensor: tf.Tensor. A signature output.
    """
    array = tensor.numpy()
    if tensor.dtype == tf.string:
        decoded = [item.decode("utf-8") for item in array.ravel()]
        return np.array(decoded, dtype=str).reshape(array.shape)
    return array


def main(argv):
    """Runs the check described in the module docstring.

    Args:
        argv: list of str. EXPORT_DIR SIGNATURE INPUTS.npz OUTPUTS.npz RESULT.json.
    """
    export_dir, signature, inputs_path, outputs_path, result_path = argv
    custom_ops = unregistered_ops(graph_op_names(export_dir))
    libraries = []
    if custom_ops:
        import tensorflow_text  # noqa: F401  registers the tokenizer ops
        libraries.append("tensorflow-text")
    still_missing = unregistered_ops(custom_ops)
    loaded = tf.saved_model.load(export_dir)
    with np.load(inputs_path) as stored:
        inputs = {key: tf.constant(stored[key]) for key in stored.files}
    outputs = loaded.signatures[signature](**inputs)
    np.savez(outputs_path, **{key: to_numpy(value) for key, value in outputs.items()})
    result = {
        "custom_ops": custom_ops,
        "custom_op_libraries": libraries,
        "unresolved_ops": still_missing,
        "signatures": describe_signatures(loaded),
        "tensorflow_version": tf.__version__,
    }
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
