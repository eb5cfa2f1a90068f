"""TF Serving warmup requests, the gRPC/REST client and the runtime check, against real exports.

No model server runs here: the requests and REST bodies are answered by the SavedModel loaded in
this process (`run_predict_request`, `run_rest_body`), which is what the server would run.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

import export_tiny_models as tiny

from tfmodels.export import runtime_check, saved_model, serving_client

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _warmup_logs(export_dir):
    path = os.path.join(export_dir, WARMUP)
    assert os.path.isfile(path), "every export writes warmup requests"
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]


@pytest.fixture(scope="module")
def loaded_text(text_export):
    return saved_model.load_servable(text_export).loaded


def test_text_export_warmup_requests_replay_through_the_loaded_model(text_export, loaded_text,
                                                                     classifier):
    all_logs = _warmup_logs(text_export)
    assert [log.predict_log.request.model_spec.signature_name for log in all_logs] == [
        "serving_default"] * 3 + ["predict_token_ids"] * 3  # every signature is warmed
    metadata = saved_model.load_servable(text_export).metadata
    assert metadata["warmup_requests"] is True
    logs = all_logs[:3]
    texts = []
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "sentiment"
        assert list(request.inputs) == ["text"]
        texts.extend(t.decode("utf-8") for t in tf.make_ndarray(request.inputs["text"]))
        response = serving_client.run_predict_request(loaded_text, request)
        probabilities = tf.make_ndarray(response.outputs["probabilities"])
        assert probabilities.shape == (1, len(tiny.CLASS_NAMES))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert texts == tiny.VERIFY_TEXTS[:3]
    # The replayed answers are the in-memory model's (the export's own verification reference).
    direct = loaded_text.signatures["serving_default"](text=tf.constant(texts))
    replayed = np.concatenate([tf.make_ndarray(serving_client.run_predict_request(
        loaded_text, log.predict_log.request).outputs["probabilities"]) for log in logs])
    np.testing.assert_allclose(replayed, direct["probabilities"].numpy(), atol=1e-6)
    # The token-id requests hold the same texts tokenized: same answers through the other signature.
    token_replayed = np.concatenate([tf.make_ndarray(serving_client.run_predict_request(
        loaded_text, log.predict_log.request).outputs["probabilities"]) for log in all_logs[3:]])
    assert tf.make_ndarray(all_logs[3].predict_log.request.inputs["token_ids"]).shape == (
        1, tiny.SEQUENCE_LENGTH)
    np.testing.assert_allclose(token_replayed, replayed, atol=1e-6)


def test_mlp_export_warmup_requests_hold_float_features(mlp_export):
    logs = _warmup_logs(mlp_export)
    loaded = saved_model.load_servable(mlp_export).loaded
    for log in logs:
        features = tf.make_ndarray(log.predict_log.request.inputs["features"])
        assert features.dtype == np.float32 and features.shape == (1, 4)
        response = serving_client.run_predict_request(loaded, log.predict_log.request)
        assert tf.make_ndarray(response.outputs["class_names"])[0].decode() in ("a", "b", "c")


def test_predict_request_and_rest_body_come_from_the_signature(text_export, loaded_text):
    texts = ["我喜欢这个电影", "这个电影太坏了!"]
    request = serving_client.make_predict_request(text_export, {"text": texts}, "sentiment",
                                                  version=1)
    assert isinstance(request, predict_pb2.PredictRequest)
    assert request.model_spec.version.value == 1
    assert request.inputs["text"].dtype == tf.string.as_datatype_enum
    body = serving_client.rest_body(text_export, {"text": texts})
    assert body == {"signature_name": "serving_default",
                    "instances": [{"text": texts[0]}, {"text": texts[1]}]}
    json.dumps(body)  # what is POSTed to /v1/models/sentiment:predict
    grpc_answer = serving_client.response_to_dict(
        serving_client.run_predict_request(loaded_text, request))
    rest_answer = serving_client.run_rest_body(loaded_text, json.loads(json.dumps(body)))
    assert [p["class_names"] for p in rest_answer["predictions"]] == grpc_answer["class_names"]
    np.testing.assert_allclose([p["probabilities"] for p in rest_answer["predictions"]],
                               grpc_answer["probabilities"], atol=1e-6)
    bare = serving_client.run_rest_body(loaded_text, {"instances": texts})  # one-input shorthand
    assert bare == rest_answer


def test_token_id_signature_request(text_export, loaded_text):
    token_ids = np.array([[2, 5, 6, 3, 0]], np.int64)  # cast to the signature's int32
    inputs = {"token_ids": token_ids, "padding_mask": (token_ids > 0), "segment_ids": 0 * token_ids}
    request = serving_client.make_predict_request(text_export, inputs, "sentiment",
                                                  signature_name="predict_token_ids")
    assert request.inputs["token_ids"].dtype == tf.int32.as_datatype_enum
    response = serving_client.run_predict_request(loaded_text, request)
    assert tf.make_ndarray(response.outputs["probabilities"]).shape == (1, 2)


def test_request_with_wrong_inputs_names_the_signature_inputs(text_export):
    with pytest.raises(saved_model.ExportError, match=r"do not match the signature's inputs \['text'\]"):
        serving_client.make_predict_request(text_export, {"sentence": ["x"]}, "sentiment")
    with pytest.raises(saved_model.ExportError, match="signature 'nope' not in"):
        serving_client.rest_body(text_export, {"text": ["x"]}, signature_name="nope")


def test_client_command_line_answers_locally_without_a_server(text_export, capsys):
    assert serving_client.main([f"--model={text_export}", "--text=我喜欢这个电影"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rest_body"]["instances"] == [{"text": "我喜欢这个电影"}]
    assert "/v1/models/sentiment:predict" in printed["curl"]
    assert printed["rest_response"]["predictions"][0]["class_names"] in tiny.CLASS_NAMES
    assert printed["grpc_response"]["class_names"] == [
        printed["rest_response"]["predictions"][0]["class_names"]]


def test_runtime_check_passes_on_this_runtime_and_replays_warmup(text_export, tmp_path):
    outputs = tmp_path / "outputs.npz"
    result = subprocess.run(
        [sys.executable, runtime_check.__file__, text_export, "--outputs", str(outputs)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["registry_problems"] == [] and report["loaded"] is True
    assert report["warmup_requests_replayed"] == 6  # 3 per signature
    with np.load(outputs) as stored:
        assert stored["0/probabilities"].shape == (1, 2)
        np.testing.assert_allclose(stored["3/probabilities"], stored["0/probabilities"], atol=1e-6)


def test_runtime_check_reports_unknown_ops_and_attributes():
    node = tf.compat.v1.NodeDef(name="m", op="MatMul")
    node.attr["T"].type = tf.float32.as_datatype_enum
    node.attr["new_in_a_later_release"].b = True
    node.attr["_output_shapes"].list.SetInParent()  # internal attributes are fine
    assert runtime_check.node_problems(node) == [
        "MatMul: attribute 'new_in_a_later_release' unknown to this runtime"]
    node.attr["T"].type = tf.string.as_datatype_enum
    del node.attr["new_in_a_later_release"]
    assert runtime_check.node_problems(node) == ["MatMul: T=string not allowed by this runtime"]
    del node.attr["T"]
    assert "MatMul: required attribute 'T' missing" in runtime_check.node_problems(node)
    missing = tf.compat.v1.NodeDef(name="x", op="TFText>NotAnOp")
    assert runtime_check.node_problems(missing) == ["op 'TFText>NotAnOp' is not registered"]
    assert runtime_check.node_problems(missing, function_names={"TFText>NotAnOp"}) == []


def test_client_command_line_without_inputs_is_an_error(mlp_export, capsys):
    assert serving_client.main([f"--model={mlp_export}", "--text=ignored"]) == 2
    assert "pass --features at least once (the signature takes features)" in capsys.readouterr().err


def test_client_command_line_names_a_server_that_does_not_answer(mlp_export, capsys):
    import socket
    with socket.socket() as unused:  # a free port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert serving_client.main([f"--model={mlp_export}", "--features=1,2,3,4", f"--rest=http://127.0.0.1:{port}"]) == 2
    assert f"error: REST http://127.0.0.1:{port}/v1/models/" in capsys.readouterr().err
    assert serving_client.main([f"--model={mlp_export}", "--features=1,2,3,4", f"--grpc=127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: gRPC 127.0.0.1:{port}: the model server did not answer the request (UNAVAILABLE")
    assert len(err.strip().splitlines()) == 1
