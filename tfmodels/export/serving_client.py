"""TensorFlow Serving client: gRPC `PredictRequest` and REST body built from an export's signature.

The request's input names and dtypes come from the SignatureDef stored in `saved_model.pb`
(no model code, no loading), so a request that TF Serving would reject for a wrong key or dtype
fails here first with the allowed names. Without a server, `run_predict_request` and
`run_rest_body` feed the same request and body to the SavedModel loaded in this process and
answer as TF Serving does (a `PredictResponse`; REST `{"predictions": [...]}`, row format).

    python -m tfmodels.export.serving_client --model=exports/sentiment --text=很好看 --text=太差了
        # prints the REST body, the curl command and the response of the loaded SavedModel
    python -m tfmodels.export.serving_client --model=exports/sentiment --text=很好看 \
        --grpc=localhost:8500          # sends the PredictRequest to a running model server
    python -m tfmodels.export.serving_client --model=exports/sentiment --text=很好看 \
        --rest=http://localhost:8501   # POSTs the body to /v1/models/<name>:predict

MLP exports take `--features=0.1,0.2,...` (repeatable) instead of `--text`; sentence-pair exports
take `--text_pair` once per `--text`.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfmodels.export.saved_model import SERVING_SIGNATURE, ExportError, resolve_version_dir

SERVE_TAG = "serve"


def signature_def(export_dir, signature_name=SERVING_SIGNATURE):
    """Returns the SignatureDef proto of a signature, read from saved_model.pb.

    Args:
        export_dir: str. A version dir (or model dir / export base, see `resolve_version_dir`).
        signature_name: str. Defaults to "serving_default".
    """
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(resolve_version_dir(export_dir), "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            if signature_name not in meta_graph.signature_def:
                raise ExportError(f"signature {signature_name!r} not in {export_dir}; choose one "
                                  f"of {', '.join(sorted(meta_graph.signature_def))}")
            return meta_graph.signature_def[signature_name]
    raise ExportError(f"{export_dir}: no MetaGraph tagged {SERVE_TAG!r}")


def signature_arrays(signature, inputs):
    """Returns {input key: np.ndarray} with the signature's dtypes; checks the keys.

    Args:
        signature: SignatureDef. From `signature_def`.
        inputs: dict of str to array-like. One entry per signature input, batch first.
    """
    expected = sorted(signature.inputs)
    if sorted(inputs) != expected:
        raise ExportError(f"inputs {sorted(inputs)} do not match the signature's inputs "
                          f"{expected}")
    arrays = {}
    for key, info in signature.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        arrays[key] = (np.asarray(inputs[key], dtype=object) if dtype == tf.string
                       else np.asarray(inputs[key], dtype=dtype.as_numpy_dtype))
    return arrays


def make_predict_request(export_dir, inputs, model_name, signature_name=SERVING_SIGNATURE,
                         version=None):
    """Builds a tensorflow-serving-api `PredictRequest` for an export's signature.

    Args:
        export_dir: str. The export (its SignatureDef gives input names and dtypes).
        inputs: dict of str to array-like. Batch-first values, e.g. {"text": ["很好看"]}.
        model_name: str. The name the server serves the model under.
        signature_name: str. Defaults to "serving_default".
        version: int or None. Pin a model version. Defaults to None (the latest).

    Example:
        >>> request = make_predict_request("exports/sentiment", {"text": ["很好看"]}, "sentiment")
    """
    from tensorflow_serving.apis import predict_pb2

    signature = signature_def(export_dir, signature_name)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, array in signature_arrays(signature, inputs).items():
        dtype = tf.dtypes.as_dtype(signature.inputs[key].dtype)
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return request


def rest_body(export_dir, inputs, signature_name=SERVING_SIGNATURE):
    """Returns the JSON body (row format) of `POST /v1/models/<name>:predict`.

    Args:
        export_dir: str. The export (its SignatureDef gives the input names).
        inputs: dict of str to array-like. Batch-first values.
        signature_name: str. Defaults to "serving_default".
    """
    arrays = signature_arrays(signature_def(export_dir, signature_name), inputs)
    count = len(next(iter(arrays.values())))
    instances = [{key: _json_value(array[i]) for key, array in arrays.items()}
                 for i in range(count)]
    return {"signature_name": signature_name, "instances": instances}


def _json_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.tolist() if hasattr(value, "tolist") else value


def run_predict_request(loaded, request):
    """Runs a PredictRequest on a loaded SavedModel; returns the PredictResponse a server sends.

    Args:
        loaded: object from `tf.saved_model.load` (import tensorflow_text first).
        request: PredictRequest.
    """
    from tensorflow_serving.apis import predict_pb2

    function = loaded.signatures[request.model_spec.signature_name or SERVING_SIGNATURE]
    outputs = function(**{key: tf.constant(tf.make_ndarray(value))
                          for key, value in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


def run_rest_body(loaded, body):
    """Answers a REST predict body with a loaded SavedModel as TF Serving does (row format).

    Args:
        loaded: object from `tf.saved_model.load`.
        body: dict. {"signature_name": ..., "instances": [...]}: each instance a {input: value}
            dict, or a bare value for a one-input signature.

    Returns:
        dict. {"predictions": [...]}: per instance a {output: value} dict (a bare value when
        the signature has one output).
    """
    function = loaded.signatures[body.get("signature_name", SERVING_SIGNATURE)]
    _, specs = function.structured_input_signature
    instances = body["instances"]
    if not all(isinstance(instance, dict) for instance in instances):
        (only,) = specs  # a bare value is allowed only for a one-input signature
        instances = [{only: instance} for instance in instances]
    columns = {key: tf.constant([instance[key] for instance in instances], dtype=spec.dtype)
               for key, spec in specs.items()}
    outputs = {key: value.numpy() for key, value in function(**columns).items()}
    predictions = []
    for i in range(len(instances)):
        row = {key: _json_value(value[i]) for key, value in outputs.items()}
        predictions.append(next(iter(row.values())) if len(row) == 1 else row)
    return {"predictions": predictions}


def send_grpc(target, request, timeout=10.0):
    """Sends a PredictRequest to a running model server over gRPC; returns the PredictResponse.

    Args:
        target: str. host:port of the server's gRPC port (8500 by default in the image).
        request: PredictRequest.
        timeout: float. Seconds. Defaults to 10.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=timeout)
    except grpc.RpcError as error:
        raise ExportError(f"gRPC {target}: the model server did not answer the request "
                          f"({error.code().name}: {error.details()})") from None


def send_rest(base_url, model_name, body, timeout=10.0):
    """POSTs a REST body to `<base_url>/v1/models/<model_name>:predict`; returns the JSON reply.

    Args:
        base_url: str. E.g. http://localhost:8501.
        model_name: str. The served model name.
        body: dict. From `rest_body`.
        timeout: float. Seconds. Defaults to 10.
    """
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1/models/{model_name}:predict",
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - user URL
            return json.loads(reply.read().decode("utf-8"))
    except urllib.error.HTTPError as error:  # the server answered with an error, e.g. an unknown model
        raise ExportError(f"REST {request.full_url}: HTTP {error.code}: "
                          f"{error.read().decode('utf-8', 'replace').strip()}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ExportError(f"REST {request.full_url}: the model server did not answer ({reason})") from None


def response_to_dict(response):
    """Returns {output: list} of a PredictResponse (strings decoded).

    Args:
        response: PredictResponse.
    """
    outputs = {}
    for key, value in sorted(response.outputs.items()):
        array = tf.make_ndarray(value)
        if array.dtype == object:
            array = np.vectorize(_json_value, otypes=[object])(array)
        outputs[key] = array.tolist()
    return outputs


def _inputs_from_args(args, signature):
    names = sorted(signature.inputs)
    given = args.features if "features" in names else args.text
    if not given:
        flag = "--features" if "features" in names else "--text"
        raise ExportError(f"no inputs: pass {flag} at least once (the signature takes "
                          f"{', '.join(names)})")
    if "features" in names:
        return {"features": [[float(v) for v in row.replace(",", " ").split()]
                             for row in args.features]}
    inputs = {"text": list(args.text)}
    if "text_pair" in names:
        if len(args.text_pair) != len(args.text):
            raise ExportError(f"--text_pair given {len(args.text_pair)} times for "
                              f"{len(args.text)} --text; a pair export needs one per text")
        inputs["text_pair"] = list(args.text_pair)
    return inputs


def main(argv=None):
    """Command line (see the module docstring); prints JSON. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="export dir: base/<name>[/<version>]")
    parser.add_argument("--model_name", help="served name (default: the export's directory name)")
    parser.add_argument("--text", action="append", default=[])
    parser.add_argument("--text_pair", action="append", default=[])
    parser.add_argument("--features", action="append", default=[])
    parser.add_argument("--signature", default=SERVING_SIGNATURE)
    parser.add_argument("--grpc", help="host:port of a running model server (gRPC)")
    parser.add_argument("--rest", help="base URL of a running model server (REST)")
    args = parser.parse_args(argv)
    try:
        version_dir = resolve_version_dir(args.model)
        model_name = args.model_name or os.path.basename(os.path.dirname(version_dir))
        inputs = _inputs_from_args(args, signature_def(version_dir, args.signature))
        body = rest_body(version_dir, inputs, args.signature)
        request = make_predict_request(version_dir, inputs, model_name, args.signature)
        result = {"rest_body": body,
                  "curl": (f"curl -s -X POST http://localhost:8501/v1/models/{model_name}:predict"
                           f" -d '{json.dumps(body, ensure_ascii=False)}'")}
        if args.grpc:
            result["grpc_response"] = response_to_dict(send_grpc(args.grpc, request))
        if args.rest:
            result["rest_response"] = send_rest(args.rest, model_name, body)
        if not (args.grpc or args.rest):
            import tensorflow_text  # noqa: F401  registers the tokenizer ops
            loaded = tf.saved_model.load(version_dir)
            result["note"] = "no server given: request and body answered by the SavedModel loaded here"
            result["grpc_response"] = response_to_dict(run_predict_request(loaded, request))
            result["rest_response"] = run_rest_body(loaded, body)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
