"""Endpoint targets over gRPC against real servers started here: KServe's ModelServer speaking the Open Inference
Protocol over gRPC (its GRPCInferenceService, the edge golden's SavedModel served with TensorFlow), and, for
`tfserving+grpc://`, tests/endpoint/tfserving_grpc_app.py: a PROTOCOL FIXTURE built on the official
`tensorflow-serving-api` stubs (no TF Serving binary installs here), which proves the messages are TF Serving's,
not that TF Serving computes like TensorFlow. The messages envcheck builds itself are checked field by field
against the official descriptors. Nothing is mocked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checking import EDGE, check, judged
from conftest import TOKEN
from servers import HERE, Server, free_port, kserve_python

from envcheck.errors import UsageError
from envcheck.targets.endpoint_client import Auth, open_client, parse_endpoint_spec, require_supported

READY_TIMEOUT_S = 180  # TensorFlow's import on two busy cores
SLOW_S = 30


def grpc_spec(protocol: str, server: Server, model: str) -> str:
    """The envcheck target naming `model` on `server`'s gRPC port."""
    return f"{protocol}+grpc://127.0.0.1:{server.port}/{model}"


def _start(command: list[str], log: Path, port: int, environment: dict[str, str] | None = None) -> Server:
    """`command` (a server listening for gRPC on `port`), ready: its channel connects."""
    import grpc

    env = {**os.environ, **(environment or {}), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    server = Server(process=process, port=port, log=log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}) before it was ready:\n{server.log_tail()}")
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return server
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S} s:\n"
                                       f"{server.log_tail()}") from None


@pytest.fixture(scope="module")
def kserve_grpc(tmp_path_factory, edge_model):
    """KServe serving `m` (the edge golden's model, version 1) and `other` (its weights × 1.05), over gRPC (its
    REST port is unused here). Started apart from conftest's `kserve`, which runs with gRPC off."""
    model = str(edge_model)
    models = [{"name": "m", "dir": model, "version": "1"}, {"name": "other", "dir": model, "version": "1", "scale": 1.05}]
    port = free_port()
    command = [str(kserve_python()), str(HERE / "kserve_app.py"), "--http_port", str(free_port()),
               "--grpc_port", str(port), "--workers", "1"]
    server = _start(command, tmp_path_factory.mktemp("kserve-grpc") / "kserve-grpc.log", port,
                    {"ENVCHECK_SERVE_MODELS": json.dumps(models)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tfserving_grpc(tmp_path_factory, edge_model):
    """The PredictionService protocol fixture: `m` (version 1, TensorProto tensor_content answers), `typed` (the
    same, answers in float_val), `other` (weights × 1.05), `guarded` (needs the bearer TOKEN), `slow` (answers
    after SLOW_S seconds)."""
    python = kserve_python()
    probe = subprocess.run([str(python), "-c", "import tensorflow_serving.apis"], check=False,
                           capture_output=True)
    if probe.returncode != 0:
        from helpers import missing

        missing("tensorflow-serving-api in the kserve venv (scripts/setup-endpoint-env.sh)")
    model = str(edge_model)
    models = [{"name": "m", "dir": model, "version": 1}, {"name": "typed", "dir": model, "typed": True},
              {"name": "other", "dir": model, "scale": 1.05}, {"name": "guarded", "dir": model, "token": TOKEN},
              {"name": "slow", "dir": model, "delay": SLOW_S}]
    port = free_port()
    server = _start([str(python), str(HERE / "tfserving_grpc_app.py"), str(port), json.dumps(models)],
                    tmp_path_factory.mktemp("tfserving-grpc") / "tfserving-grpc.log", port)
    yield server
    server.stop()


# -- v2 over gRPC (KServe) ---------------------------------------------------------------------------------------

def test_v2_grpc_of_the_golden_model_matches_losslessly(run_cli, kserve_grpc):
    code, out, _, target = check(run_cli, "--target", grpc_spec("v2", kserve_grpc, "m"))
    assert code == 0, out
    assert {output["status"] for output in target["outputs"].values()} <= {"identical", "noise"}
    assert judged(target) == []
    endpoint = target["fingerprint"]["endpoint"]
    assert (endpoint["protocol"], endpoint["model_version"], endpoint["server"]) == ("v2", "1", "kserve 0.21.0")
    assert endpoint["signature"]["inputs"] == {"image": {"dtype": "float32", "shape": [-1, 16, 16, 3]}}
    transport = endpoint["transport"]
    assert transport["format"] == "protobuf"
    assert transport["lossless"] is transport["float32_exact"] is True and transport["max_rounding_ulp"] == 0.0
    assert set(transport["outputs"]) == set(target["outputs"])


def test_v2_grpc_answers_are_bitwise_what_tensorflow_computes_here(run_cli, kserve_grpc, needs_tensorflow):
    """Binary tensors lose nothing: the endpoint's outputs are the host probe's, bit for bit (same TensorFlow,
    same machine; the edge model computes each sample alike in any batch)."""
    _, out, _, document = run_cli("check", *EDGE, "--target", "host", "--target", grpc_spec("v2", kserve_grpc, "m"))
    host, endpoint = document["targets"]
    assert endpoint["output_digest"] == host["output_digest"], out


def test_v2_grpc_of_another_model_fails(run_cli, kserve_grpc):
    code, out, _, target = check(run_cli, "--target", grpc_spec("v2", kserve_grpc, "other"))
    assert code == 1, out
    assert {output["status"] for output in target["outputs"].values()} & {"drift", "mismatch"}, target["outputs"]


# -- TF Serving's PredictionService (the protocol fixture) -------------------------------------------------------

@pytest.mark.parametrize("model", ["m", "typed"], ids=["tensor-content", "float-val"])
def test_tfserving_grpc_of_the_golden_model_matches(run_cli, tfserving_grpc, model):
    code, out, _, target = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, model))
    assert code == 0, out
    assert {output["status"] for output in target["outputs"].values()} <= {"identical", "noise"}
    assert judged(target) == []
    endpoint = target["fingerprint"]["endpoint"]
    assert (endpoint["protocol"], endpoint["model_version"], endpoint["versions"]) == ("tfserving", "1", ["1"])
    assert endpoint["signature"]["inputs"] == {"image": {"dtype": "float32", "shape": [-1, 16, 16, 3]}}
    assert endpoint["transport"]["format"] == "protobuf" and endpoint["transport"]["lossless"] is True


def test_tfserving_grpc_of_another_model_fails(run_cli, tfserving_grpc):
    code, out, _, target = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, "other"))
    assert code == 1, out
    assert {output["status"] for output in target["outputs"].values()} & {"drift", "mismatch"}, target["outputs"]


def test_tfserving_grpc_another_version_fails_naming_it(run_cli, tfserving_grpc):
    code, out, _, target = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, "m") + "@2")
    assert code == 1, out
    assert [(d["path"], d["golden"], d["target"]) for d in judged(target)] == [("endpoint.model_version", "2", "1")]


def test_the_replica_is_read_from_the_answers_metadata(tfserving_grpc):
    spec = parse_endpoint_spec(grpc_spec("tfserving", tfserving_grpc, "m"))
    image = np.zeros((2, 16, 16, 3), dtype=np.float32)
    with open_client(spec, auth=Auth(), timeout=30, replica_header="X-Replica") as client:
        answer = client.infer({"image": image})
    assert answer.replica == "fixture-replica-1"
    assert answer.model_version == "1" and answer.transport is not None and answer.transport.lossless
    assert {name: array.shape[0] for name, array in answer.outputs.items()} == {"class_probs": 2, "embedding": 2}


def test_a_wrong_grpc_token_is_an_error_and_written_nowhere(run_cli, tfserving_grpc, tmp_path, monkeypatch):
    wrong = "wrong-token-" + "9" * 20
    monkeypatch.setenv("ENDPOINT_TOKEN", wrong)
    spec = grpc_spec("tfserving", tfserving_grpc, "guarded")
    code, out, err, target = check(run_cli, "--target", spec, "--token-env", "ENDPOINT_TOKEN")
    assert code == 3, out
    assert target["error"]["kind"] == "endpoint-grpc-unauthenticated"
    assert "UNAUTHENTICATED" in out and spec in out
    written = out + err + "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())
    assert wrong not in written and TOKEN not in written


def test_the_right_grpc_token_passes(run_cli, tfserving_grpc, monkeypatch):
    monkeypatch.setenv("ENDPOINT_TOKEN", TOKEN)
    code, out, err, _ = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, "guarded"),
                              "--token-env", "ENDPOINT_TOKEN")
    assert code == 0, out
    assert TOKEN not in out + err


def test_an_unknown_grpc_model_is_an_error_naming_the_status(run_cli, tfserving_grpc):
    code, out, _, target = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, "nosuchmodel"))
    assert code == 3 and target["error"]["kind"] == "endpoint-grpc-not-found"
    assert "NOT_FOUND" in out


def test_the_wrong_protocol_on_a_grpc_port_is_an_error_naming_it(run_cli, tfserving_grpc):
    """v2 asked of a TF Serving port: the server has no GRPCInferenceService, gRPC says UNIMPLEMENTED."""
    code, out, _, target = check(run_cli, "--target", grpc_spec("v2", tfserving_grpc, "m"))
    assert code == 3 and target["error"]["kind"] == "endpoint-grpc-unimplemented", out
    assert "UNIMPLEMENTED (the server does not offer this method)" in out


def test_a_slow_grpc_server_is_an_error_within_the_timeout(run_cli, tfserving_grpc):
    """A gRPC deadline: the server would answer after SLOW_S seconds."""
    started = time.monotonic()
    code, out, _, target = check(run_cli, "--target", grpc_spec("tfserving", tfserving_grpc, "slow"), "--timeout", "3")
    took = time.monotonic() - started
    assert code == 3 and target["error"]["kind"] == "endpoint-timeout", out
    assert "no answer within" in out or "did not finish within" in out
    assert took < 12, took


# -- no server -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["v2", "tfserving"])
def test_an_unreachable_grpc_port_is_an_error_with_the_report_written(run_cli, protocol):
    spec = f"{protocol}+grpc://127.0.0.1:{free_port()}/m"
    code, out, _, target = check(run_cli, "--target", spec)
    assert code == 3, out
    assert target["error"]["kind"] == "endpoint-unreachable"
    (line,) = [line for line in out.splitlines() if "endpoint-unreachable:" in line]
    assert f"cannot reach {spec}" in line and "Connection refused" in line


def test_a_host_that_does_not_resolve_is_unreachable(run_cli):
    """`.invalid` never resolves (RFC 6761): an ERROR naming the endpoint, not a server's UNAVAILABLE."""
    code, out, _, target = check(run_cli, "--target", "v2+grpc://envcheck-test.invalid:8081/m")
    assert code == 3, out
    assert target["error"]["kind"] == "endpoint-unreachable"
    assert "cannot reach v2+grpc://envcheck-test.invalid:8081/m" in out


def test_without_grpcio_a_grpc_target_is_a_usage_error_naming_the_extra(run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed: find_spec and import fail
    with pytest.raises(UsageError, match=r"pip install 'envcheck\[grpc\]'"):
        require_supported(parse_endpoint_spec("v2+grpc://127.0.0.1:8081/m"))
    code, _, err, _ = run_cli("check", *EDGE, "--target", "v2+grpc://127.0.0.1:8081/m")
    assert code == 2 and "envcheck[grpc]" in err and "Traceback" not in err
    require_supported(parse_endpoint_spec("v2+http://127.0.0.1:8081/m"))  # REST needs nothing more


def test_a_grpc_spec_opens_the_grpc_client():
    from envcheck.targets.endpoint_grpc import GrpcEndpointClient

    for spec in ("v2+grpc://127.0.0.1:1/m", "tfserving+grpc://127.0.0.1/m"):
        with open_client(parse_endpoint_spec(spec), auth=Auth(), timeout=1) as client:
            assert isinstance(client, GrpcEndpointClient)


SPECIAL = np.array([0.1, -0.0, 1e-45, 3.4028235e38, np.inf, -np.inf, 1.17549435e-38, np.nan], dtype=np.float32)
"""float32 values text rounds or mangles: a denormal, the largest, infinities, a NaN."""


def test_tensor_protos_carry_every_float32_bit():
    from envcheck.targets.endpoint_grpc import GrpcEndpointClient, tensor_to_array

    client = GrpcEndpointClient(parse_endpoint_spec("tfserving+grpc://h/m@3"), auth=Auth(), timeout=1)
    sent = SPECIAL.reshape(2, 4)
    request = client._tfserving_request({"image": sent})
    assert (request.model_spec.name, request.model_spec.version.value) == ("m", 3)
    back = tensor_to_array(request.inputs["image"], "image")
    assert back.dtype == np.float32 and back.tobytes() == sent.tobytes()


def test_typed_tensor_values_are_read_with_tensorflows_repeat_rule():
    from envcheck.targets.endpoint_grpc import tensor_to_array
    from envcheck.targets.endpoint_grpc_protos import DATA_TYPES, message_class

    tensor = message_class("tensorflow.TensorProto")(dtype=DATA_TYPES["DT_FLOAT"])
    tensor.tensor_shape.dim.add(size=2)
    tensor.tensor_shape.dim.add(size=3)
    tensor.float_val.extend(SPECIAL[:6].tolist())
    assert tensor_to_array(tensor, "x").tobytes() == SPECIAL[:6].reshape(2, 3).tobytes()
    del tensor.float_val[1:]
    assert np.array_equal(tensor_to_array(tensor, "x"), np.full((2, 3), 0.1, dtype=np.float32))
    tensor.float_val.extend([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # 7 values for 6 places
    with pytest.raises(ValueError, match="do not fill the shape"):
        tensor_to_array(tensor, "x")


def test_v2_answers_are_read_from_raw_or_typed_contents():
    from envcheck.targets.endpoint_grpc import decode_v2_response
    from envcheck.targets.endpoint_grpc_protos import message_class

    response = message_class("inference.ModelInferResponse")(model_version="4")
    response.outputs.add(name="probs", datatype="FP32", shape=[2, 4]).contents.fp32_contents.extend(SPECIAL.tolist())
    response.outputs.add(name="label", datatype="INT64", shape=[2]).contents.int64_contents.extend([7, -1])
    outputs, version = decode_v2_response(response)
    assert version == "4" and outputs["probs"].tobytes() == SPECIAL.reshape(2, 4).tobytes()
    assert outputs["label"].dtype == np.int64 and outputs["label"].tolist() == [7, -1]
    for tensor in response.outputs:
        tensor.ClearField("contents")
    response.raw_output_contents.extend([SPECIAL.astype("<f4").tobytes(), np.array([7, -1], "<i8").tobytes()])
    raw, _ = decode_v2_response(response)
    assert raw["probs"].tobytes() == outputs["probs"].tobytes() and raw["label"].tolist() == [7, -1]
    del response.raw_output_contents[1]
    with pytest.raises(ValueError, match="raw_output_contents"):
        decode_v2_response(response)


OFFICIAL_DESCRIPTORS = r"""
import json, sys
from google.protobuf import descriptor_pool
import kserve.protocol.grpc.grpc_predict_v2_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
pool = descriptor_pool.Default()
def repeated(field):
    return field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
def fields(name):
    message = pool.FindMessageTypeByName(name)
    return {field.name: [field.number, field.type, repeated(field),
                         (field.message_type or field.enum_type).full_name if (field.message_type or field.enum_type) else "",
                         [value.number for value in field.enum_type.values] if field.enum_type else []]
            for field in message.fields}
print(json.dumps({name: fields(name) for name in json.loads(sys.argv[1])}))
"""


def test_the_messages_are_the_official_ones_field_by_field():
    """Every field envcheck declares has the official proto's number, type, label, message or enum type (and
    enum numbers), read from the official descriptors: kserve's grpc_predict_v2_pb2 and tensorflow-serving-api's
    (in the kserve venv, which has both)."""
    from envcheck.targets.endpoint_grpc_protos import POOL

    ours = {}
    for declared in _declared_files():
        package, messages = declared.package, declared.messages
        for message_name in messages:
            descriptor = POOL.FindMessageTypeByName(f"{package}.{message_name}")
            for message in (descriptor, *descriptor.nested_types):
                ours[message.full_name] = {field.name: [field.number, field.type, _repeated(field), _type_name(field),
                                                        _enum_numbers(field)]
                                           for field in message.fields}
    probe = subprocess.run([str(kserve_python()), "-c", OFFICIAL_DESCRIPTORS, json.dumps(sorted(ours))],
                           check=False, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if probe.returncode != 0 and "No module named 'tensorflow_serving'" in probe.stderr:
        from helpers import missing

        missing("tensorflow-serving-api in the kserve venv (scripts/setup-endpoint-env.sh)")
    assert probe.returncode == 0, probe.stderr[-2000:]
    official = json.loads(probe.stdout.splitlines()[-1])
    assert len(ours) >= 25
    for message, fields in ours.items():
        for name, (number, kind, repeated, type_name, enum_numbers) in fields.items():
            theirs = official[message].get(name)
            assert theirs is not None, f"{message}.{name} is not in the official proto"
            assert [number, kind, repeated, type_name] == theirs[:4], f"{message}.{name}"
            assert set(enum_numbers) <= set(theirs[4]), f"{message}.{name}"


def _declared_files():
    from envcheck.targets.endpoint_grpc_protos import FILES

    return FILES


def _repeated(field) -> bool:
    """protobuf 7 dropped FieldDescriptor.label for is_repeated (5.29 and later have both)."""
    return field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED


def _type_name(field) -> str:
    named = field.message_type or field.enum_type
    return named.full_name if named else ""


def _enum_numbers(field) -> list[int]:
    return [value.number for value in field.enum_type.values] if field.enum_type else []
