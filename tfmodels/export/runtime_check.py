"""Checks that a SavedModel loads and runs on the TensorFlow runtime of the current process.

TensorFlow Serving embeds one TensorFlow (and tensorflow-text) version; a SavedModel written by
a newer TensorFlow can use ops, or attributes of ops, that the older runtime does not know, and
then fails to load there. Run this script with the Python of the TensorFlow version a server
embeds (e.g. a venv with `tensorflow==2.20.0 tensorflow-text==2.20.0` for TF Serving 2.20):

    python tfmodels/export/runtime_check.py EXPORT_DIR [--outputs OUTPUTS.npz]

It imports only TensorFlow, tensorflow_text and (if installed) tensorflow_serving, never
`tfmodels`. It checks every node of the graph and of its functions against this runtime's op
registry: unknown ops, attributes the op does not define, required attributes that are missing,
and types outside an attribute's allowed list. Then it loads the SavedModel and replays the
warmup requests of `assets.extra/tf_serving_warmup_requests` through their signatures (what
TF Serving does when it loads a model), saving the outputs to OUTPUTS.npz
(`<request>/<output>`). It prints a JSON report and exits with status 1 if anything failed.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _register_custom_ops():
    """Imports tensorflow_text (its ops) if installed; returns its version or None."""
    try:
        import tensorflow_text
    except ImportError:
        return None
    return getattr(tensorflow_text, "__version__", "unknown")


def graph_nodes(export_dir):
    """Yields (function name or "graph", NodeDef) for every node of a SavedModel.

    Args:
        export_dir: str. SavedModel directory.
    """
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for node in meta_graph.graph_def.node:
            yield "graph", node
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                yield function.signature.name, node


def node_problems(node, function_names=()):
    """Returns the problems of one NodeDef against this process's op registry ([] if none).

    Args:
        node: NodeDef. A graph or function node.
        function_names: collection of str. Functions of the SavedModel (ops that call them are
            not registry ops). Defaults to ().
    """
    if node.op in function_names:
        return []
    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return [f"op {node.op!r} is not registered"]
    problems = []
    defined = {attr.name: attr for attr in op_def.attr}
    for name, value in node.attr.items():
        if name.startswith("_"):
            continue  # internal attributes (placement, shapes), not part of the op
        if name not in defined:
            problems.append(f"{node.op}: attribute {name!r} unknown to this runtime")
            continue
        allowed = defined[name].allowed_values.list.type
        if defined[name].type == "type" and allowed and value.type not in allowed:
            problems.append(f"{node.op}: {name}={tf.dtypes.as_dtype(value.type).name} not "
                            "allowed by this runtime")
    for name, attr in defined.items():
        if not attr.HasField("default_value") and name not in node.attr:
            problems.append(f"{node.op}: required attribute {name!r} missing")
    return problems


def registry_problems(export_dir):
    """Returns sorted unique problems of all nodes of a SavedModel (see `node_problems`).

    Args:
        export_dir: str. SavedModel directory.
    """
    nodes = list(graph_nodes(export_dir))
    function_names = {name for name, _ in nodes if name != "graph"}
    return sorted({problem for _, node in nodes for problem in node_problems(node, function_names)})


def read_warmup_requests(export_dir):
    """Returns [(signature name, {input: np.ndarray})] from the export's warmup file.

    Args:
        export_dir: str. SavedModel directory.

    Raises:
        ImportError: tensorflow_serving is not installed.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_PATH)
    if not os.path.isfile(path):
        return []
    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name or "serving_default",
                         {key: tf.make_ndarray(value) for key, value in request.inputs.items()}))
    return requests


def replay(loaded, requests):
    """Runs each (signature, inputs) request; returns {"<i>/<output>": np.ndarray}.

    Args:
        loaded: object returned by tf.saved_model.load.
        requests: list of (str, dict). From `read_warmup_requests`.
    """
    outputs = {}
    for index, (signature, inputs) in enumerate(requests):
        result = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        for key, value in result.items():
            array = value.numpy()
            if value.dtype == tf.string:
                array = np.array([item.decode("utf-8") for item in array.ravel()],
                                 dtype=str).reshape(array.shape)
            outputs[f"{index}/{key}"] = array
    return outputs


def check(export_dir, outputs_path=None):
    """Runs all checks on one export; returns the report dict (`passed` says the verdict).

    Args:
        export_dir: str. SavedModel directory.
        outputs_path: str or None. Where to save the replayed outputs (.npz). Defaults to None.
    """
    report = {"export_dir": export_dir, "tensorflow": tf.__version__,
              "tensorflow_text": _register_custom_ops()}
    report["registry_problems"] = registry_problems(export_dir)
    try:
        loaded = tf.saved_model.load(export_dir)
        report["loaded"] = True
    except Exception as error:  # noqa: BLE001 - reported, not raised
        report.update(loaded=False, load_error=str(error).splitlines()[0], passed=False)
        return report
    try:
        requests = read_warmup_requests(export_dir)
    except ImportError:
        requests = None
    report["warmup_requests_replayed"] = None if requests is None else len(requests)
    if requests:
        outputs = replay(loaded, requests)
        if outputs_path:
            np.savez(outputs_path, **outputs)
    report["passed"] = not report["registry_problems"] and report["loaded"]
    return report


def main(argv=None):
    """Command line: prints the report as JSON; exit status 1 when the check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="SavedModel version directory")
    parser.add_argument("--outputs", help="save the replayed warmup outputs to this .npz")
    args = parser.parse_args(argv)
    report = check(args.export_dir, args.outputs)
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
