"""Endpoint targets over HTTP against real servers (tests/endpoint/servers.py): KServe serving the edge golden's
SavedModel with TensorFlow over v2 and its v1 (TF Serving's REST format), and tiny stdlib servers for a slow
answer, a server dying mid-run and a batch limit. Nothing is mocked."""
from __future__ import annotations

import time

import numpy as np
import pytest
from checking import EDGE, check, judged
from conftest import TOKEN
from servers import running, start_stdlib

from envcheck.errors import UsageError
from envcheck.targets.endpoint_client import Auth, parse_endpoint_spec
from envcheck.targets.endpoint_codec import measure_float32


@pytest.mark.parametrize("protocol", ["v2", "tfserving"])
def test_a_server_of_the_golden_model_matches(run_cli, kserve, protocol):
    code, out, _, target = check(run_cli, "--target", kserve.spec(protocol, "m"))
    assert code == 0, out
    assert {output["status"] for output in target["outputs"].values()} <= {"identical", "noise"}
    assert judged(target) == []
    endpoint = target["fingerprint"]["endpoint"]
    assert endpoint["protocol"] == protocol
    assert endpoint["transport"]["lossless"] is endpoint["transport"]["float32_exact"] is True  # KServe: exact
    if protocol == "v2":
        assert endpoint["model_version"] == "1"
        assert endpoint["signature"]["inputs"] == {"image": {"dtype": "float32", "shape": [-1, 16, 16, 3]}}


def test_the_answers_are_bitwise_what_tensorflow_computes_here(run_cli, kserve, needs_tensorflow):
    """The transport loses nothing: the endpoint's outputs are the host probe's, bit for bit (same TensorFlow,
    same machine; the edge model computes each sample alike in any batch, as its golden's calibration shows)."""
    _, out, _, document = run_cli("check", *EDGE, "--target", "host", "--target", kserve.spec("v2", "m"))
    host, endpoint = document["targets"]
    assert endpoint["output_digest"] == host["output_digest"], out


def test_another_model_fails(run_cli, kserve):
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "other"))
    assert code == 1, out
    assert {output["status"] for output in target["outputs"].values()} & {"drift", "mismatch"}, target["outputs"]


def test_another_input_name_fails_naming_it(run_cli, kserve):
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "renamed"))
    assert code == 1, out
    paths = {d["path"] for d in judged(target)}
    assert "endpoint.signature.inputs.pixels" in paths and "endpoint.signature.inputs.image" in paths, paths
    assert "pixels" in out and "image" in out
    assert target["error"] is None  # a FAIL naming the difference, not a failed request


def test_another_version_fails_naming_it(run_cli, kserve):
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "m") + "@2")
    assert code == 1, out
    (version,) = judged(target)
    assert (version["path"], version["golden"], version["target"]) == ("endpoint.model_version", "2", "1")
    assert "endpoint.model_version: 2 → 1" in out


def test_a_lossy_transport_is_measured_apart_from_drift(run_cli, kserve):
    """Answers written with 6 significant digits: the outputs still pass, and the one warning is the transport's,
    with its rounding measured. (Over TF Serving's format: KServe writes v2 answers itself, always exactly.)"""
    code, out, _, target = check(run_cli, "--target", kserve.spec("tfserving", "lossy"))
    assert code == 0, out
    assert target["verdict"] == "WARN"
    assert [d["path"] for d in judged(target)] == ["endpoint.transport.lossless"]
    transport = target["fingerprint"]["endpoint"]["transport"]
    assert 0 < transport["max_rounding_ulp"] <= 0.5
    assert {output["max_digits"] for output in transport["outputs"].values()} == {6}


def test_a_wrong_token_is_an_error_and_written_nowhere(run_cli, kserve, tmp_path, monkeypatch):
    wrong = "wrong-token-" + "9" * 20
    monkeypatch.setenv("ENDPOINT_TOKEN", wrong)
    code, out, err, target = check(run_cli, "--target", kserve.spec("v2", "guarded"), "--token-env", "ENDPOINT_TOKEN")
    assert code == 3, out
    assert target["error"]["kind"] == "endpoint-http-401"
    assert "HTTP 401" in out and kserve.spec("v2", "guarded") in out
    written = out + err + "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())
    assert wrong not in written and TOKEN not in written


def test_the_right_token_from_a_file_passes(run_cli, kserve, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, err, _ = check(run_cli, "--target", kserve.spec("v2", "guarded"), "--token-file", str(token_file))
    assert code == 0, out
    assert TOKEN not in out + err + "".join(p.read_text(errors="replace") for p in (tmp_path / "kept").rglob("*.json"))


def test_an_unknown_model_is_an_error_naming_the_status(run_cli, kserve):
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "nosuchmodel"))
    assert code == 3 and target["error"]["kind"] == "endpoint-http-404"
    assert "HTTP 404" in out and kserve.spec("v2", "nosuchmodel") in out


def test_a_refused_connection_is_an_error_with_the_report_written(run_cli, kserve):
    from servers import free_port

    code, out, _, target = check(run_cli, "--target", f"v2+http://127.0.0.1:{free_port()}/m")
    assert code == 3 and "Connection refused" in out
    assert target["error"]["kind"] == "endpoint-unreachable"


def test_a_slow_server_is_an_error_within_the_timeout(run_cli, tmp_path):
    with running(start_stdlib("stdlib_server.py", tmp_path, "slow", "30")) as slow:
        started = time.monotonic()
        code, out, _, target = check(run_cli, "--target", slow.spec("v2", "m"), "--timeout", "2")
        took = time.monotonic() - started
    assert code == 3 and "no answer within" in out
    assert target["error"]["kind"] == "endpoint-timeout"
    assert took < 10, took  # the server would have answered after 30 s


def test_a_server_that_dies_mid_run_is_an_error(run_cli, tmp_path):
    with running(start_stdlib("stdlib_server.py", tmp_path, "dies")) as dying:
        code, out, _, target = check(run_cli, "--target", dying.spec("v2", "m"))
    assert code == 3 and dying.spec("v2", "m") in out
    assert target["error"]["kind"] in ("endpoint-disconnected", "endpoint-unreachable")


def test_a_batch_limit_is_met_with_smaller_batches(run_cli, tmp_path):
    """413 for more than 5 rows: the target halves its batches until they pass, every golden row is answered
    (the zeros this server answers then fail the comparison: a FAIL with all rows, not an ERROR)."""
    with running(start_stdlib("stdlib_server.py", tmp_path, "limit", "5")) as limited:
        code, out, _, target = check(run_cli, "--target", limited.spec("v2", "m"))
    assert code == 1, out
    assert target["error"] is None
    for output in target["outputs"].values():
        assert output["shape"][0] == 28 and "beyond tolerance" in output["reason"], output


def test_mutual_tls_with_the_ca_bundle_and_a_client_certificate(run_cli, tmp_path):
    """An https endpoint that requires a client certificate: with --ca-bundle and the certificate, its answers
    arrive (zeros: a FAIL, not an ERROR); without the certificate, or without trusting its CA, an ERROR."""
    from helpers import make_tls

    tls = make_tls(tmp_path / "tls", "endpoint")
    trust = ("--ca-bundle", str(tls["ca"]))
    mine = ("--client-cert", str(tls["cert"]), "--client-key", str(tls["key"]))
    with running(start_stdlib("stdlib_server.py", tmp_path, "slow", "0", tls=tls)) as secure:
        spec = secure.spec("v2", "m")
        assert spec.startswith("v2+https://")
        answered, _, _, target = check(run_cli, "--target", spec, *trust, *mine)
        no_certificate, _, _, refused = check(run_cli, "--target", spec, *trust)
        untrusted, out, _, unverified = check(run_cli, "--target", spec, *mine)
    assert answered == 1 and target["error"] is None
    assert no_certificate == 3 and refused["error"]["kind"] in ("endpoint-tls", "endpoint-disconnected",
                                                                "endpoint-unreachable")
    assert untrusted == 3 and unverified["error"]["kind"] == "endpoint-tls" and "certificate" in out


# -- without a server ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("tfserving+http://h/m", ("tfserving", "http", "h", 8501, "m", None, "http")),
    ("tfserving+http://h:9000/m@3", ("tfserving", "http", "h", 9000, "m", "3", "http")),
    ("tfserving+https://h/m@stable", ("tfserving", "http", "h", 8501, "m", "stable", "https")),
    ("v2+http://127.0.0.1:8080/m", ("v2", "http", "127.0.0.1", 8080, "m", None, "http")),
    ("v2+https://[::1]:8443/m", ("v2", "http", "::1", 8443, "m", None, "https")),
    ("v2+grpc://h:8081/m", ("v2", "grpc", "h", 8081, "m", None, "http")),
])
def test_spec_forms(spec, expected):
    parsed = parse_endpoint_spec(spec)
    assert (parsed.protocol, parsed.transport, parsed.host, parsed.port, parsed.model, parsed.version,
            parsed.scheme) == expected


@pytest.mark.parametrize("spec, says", [
    ("v2+http://h/m", "names its port"), ("v3+http://h:1/m", "an endpoint target is"),
    ("v2+http://h:1/", "names no model"), ("v2+http://h:99999/m", "port"), ("v2+http://h:1/m@", "version"),
    ("v2+http://user:pw@h:1/m", "--token-env"), ("v2+http://h:1/m?x=1", "no query"),
])
def test_bad_specs_are_usage_errors(spec, says):
    with pytest.raises(UsageError, match=says.replace("?", r"\?")):
        parse_endpoint_spec(spec)


def test_the_token_never_shows_in_a_repr():
    assert "abc123" not in repr(Auth(token="abc123")) + str(Auth(token="abc123"))


def test_the_transport_measure():
    exact = np.array([0.1, 1e-30, -3.5], dtype=np.float32).astype(np.float64).tolist()  # as Python's json writes them
    narrow, measured = measure_float32(exact)
    assert measured.float32_exact and measured.lossless and measured.max_rounding_ulp == 0.0
    assert narrow.dtype == np.float32
    values = np.float32([0.1234567, 3.1415927, 2.7182817])
    _, six = measure_float32([f"{v:.6g}" for v in values])
    assert not six.float32_exact and not six.lossless and 0 < six.max_rounding_ulp <= 0.5 and six.max_digits == 6
    nine, nine_measured = measure_float32([f"{v:.9g}" for v in values])  # 9 digits name each float32: lossless
    assert not nine_measured.float32_exact and nine_measured.lossless and np.array_equal(nine, values)
    _, measured = measure_float32([float("nan"), float("inf")])
    assert measured.float32_exact
