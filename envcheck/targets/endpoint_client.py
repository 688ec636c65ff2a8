"""Clients of serving endpoints: TF Serving's REST API and the Open Inference Protocol (KServe v2) over HTTP(S).

One client is one connection (a load balancer spreads fresh connections, so replica checks open one per
round); `infer` sends named numpy arrays and returns named numpy arrays, the replica the server names and the
seconds it took. Every failure is an EndpointError: one line naming the endpoint and what went wrong, never a
token or a header (the token lives only in the Authorization header this module writes).

The spec forms (docs/endpoints.md): `tfserving+http://HOST[:8501]/MODEL[@VERSION]`,
`v2+http://HOST:PORT/MODEL[@VERSION]`, `https` for TLS in place of `http`, and `grpc` (endpoint_grpc.py's client,
which needs the optional extra `envcheck[grpc]`).
"""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envcheck.errors import TargetUnavailable, UsageError
from envcheck.targets.endpoint_codec import (
    TransportReport,
    decode_tfserving_outputs,
    decode_v2_outputs,
    encode_tfserving_request,
    encode_v2_request,
)

PROTOCOLS = ("v2", "tfserving")
TRANSPORTS = ("http", "https", "grpc")
DEFAULT_PORTS = {("tfserving", "http"): 8501, ("tfserving", "https"): 8501, ("tfserving", "grpc"): 8500}
"""TF Serving's documented ports; a v2 server has no one default (KServe 8080, Triton 8000): name it."""
SPEC_FORMS = "tfserving+http://HOST[:8501]/MODEL[@VERSION] | v2+http://HOST:PORT/MODEL[@VERSION] (https: TLS)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SIGNATURE_NAME = "serving_default"
ERROR_BODY_CHARS = 200


@dataclass(frozen=True)
class EndpointSpec:
    """A serving endpoint as `--target` names it."""

    protocol: str
    """`v2` (Open Inference Protocol) or `tfserving` (TF Serving's REST/gRPC API)."""
    transport: str
    """`http` or `grpc`."""
    host: str
    port: int
    model: str
    version: str | None
    """The version asked for (TF Serving: a number, else a version label); None: whatever the server serves."""
    scheme: str
    """`http` or `https` (TLS)."""

    @property
    def address(self) -> str:
        """host:port as a URL writes it (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        """The spec in its canonical form (what errors and reports name)."""
        scheme = "grpc" if self.transport == "grpc" else self.scheme
        version = f"@{self.version}" if self.version else ""
        return f"{self.protocol}+{scheme}://{self.address}/{self.model}{version}"


def parse_endpoint_spec(spec: str) -> EndpointSpec:
    """The endpoint a spec names; UsageError (one line) naming what is wrong."""
    prefix, sep, _ = spec.partition("://")
    protocol, plus, scheme = prefix.partition("+")
    if not sep or not plus or protocol not in PROTOCOLS or scheme not in TRANSPORTS:
        raise UsageError(f"{spec!r}: an endpoint target is {SPEC_FORMS}")
    parts = urllib.parse.urlsplit(spec)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(f"{spec!r}: an endpoint target has no query, fragment or user (use --token-env/--token-file)")
    if not parts.hostname:
        raise UsageError(f"{spec!r}: names no host")
    try:
        port = parts.port or DEFAULT_PORTS.get((protocol, scheme))
    except ValueError:
        raise UsageError(f"{spec!r}: the port is not a number from 1 to 65535") from None
    if port is None:
        raise UsageError(f"{spec!r}: a v2 endpoint names its port (KServe serves on 8080, Triton on 8000)")
    model, at, version = parts.path.lstrip("/").partition("@")
    if not _NAME.match(model):
        raise UsageError(f"{spec!r}: names no model (…/MODEL[@VERSION]; letters, digits, '_', '.', '-')")
    if at and not _NAME.match(version):
        raise UsageError(f"{spec!r}: the version after '@' is empty or not a plain name")
    return EndpointSpec(protocol=protocol, transport="grpc" if scheme == "grpc" else "http", host=parts.hostname,
                        port=port, model=model, version=version or None,
                        scheme="https" if scheme == "https" else "http")


def require_supported(spec: EndpointSpec) -> None:
    """UsageError for a spec this installation cannot serve: gRPC needs grpcio and protobuf (`envcheck[grpc]`)."""
    if spec.transport == "grpc" and not _grpc_installed():
        raise UsageError(f"{spec}: gRPC endpoints need grpcio and protobuf: pip install 'envcheck[grpc]'")


def _grpc_installed() -> bool:
    """Whether the optional extra is there, asked without importing it (grpc is heavy)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("grpc", "google.protobuf"))
    except (ImportError, ValueError):  # a parent package missing, or a module whose spec is unset
        return False


@dataclass(frozen=True)
class Auth:
    """How to prove who we are: a bearer token, TLS trust and a client certificate. Never printed: the token is
    left out of repr, and nothing here goes into a capture or a report."""

    token: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None
    """PEM file of the certificate authorities to trust for https (None: the system's)."""
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def from_options(cls, token_env: str | None = None, token_file: str | None = None, ca_bundle: str | None = None,
                     client_cert: str | None = None, client_key: str | None = None) -> Auth:
        """Auth from the command line's options; UsageError when a named variable or file cannot be read."""
        if token_env and token_file:
            raise UsageError("--token-env and --token-file name two tokens: give one")
        token = None
        if token_env:
            token = os.environ.get(token_env)
            if not token:
                raise UsageError(f"--token-env {token_env}: that environment variable is not set or empty")
        if token_file:
            token = _read_token_file(token_file)
        if client_key and not client_cert:
            raise UsageError("--client-key needs --client-cert")
        for option, path in (("--ca-bundle", ca_bundle), ("--client-cert", client_cert), ("--client-key", client_key)):
            if path and not Path(path).is_file():
                raise UsageError(f"{option} {path}: no such file")
        return cls(token=token.strip() if token else None, ca_bundle=Path(ca_bundle) if ca_bundle else None,
                   client_cert=Path(client_cert) if client_cert else None,
                   client_key=Path(client_key) if client_key else None)

    def headers(self) -> dict[str, str]:
        """The request headers this auth adds."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def redact(self, text: str) -> str:
        """`text` with the token, should a server have echoed it, replaced."""
        return text.replace(self.token, "[token redacted]") if self.token else text


def _read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--token-file {path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if not token:
        raise UsageError(f"--token-file {path}: the file is empty")
    return token


class EndpointError(TargetUnavailable):
    """The endpoint could not answer: refused, timed out, an HTTP error status, or an answer we cannot read.
    One line naming the endpoint; never the token."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        """`kind`: the TargetFailure kind (endpoint-http-401, endpoint-unreachable, endpoint-timeout…)."""
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def rejected_request(self) -> bool:
        """The server refused this request's content (400/413/422…), not us: a smaller batch may pass."""
        return self.status in (400, 413, 422)


@dataclass(frozen=True)
class Answer:
    """One inference's outcome."""

    outputs: dict[str, np.ndarray]
    """Output name -> float64-decoded, then cast to the output's dtype (float32 for float tensors)."""
    replica: str | None
    """The replica header's value, when one was asked for and the server sent it."""
    elapsed_s: float
    """Seconds from sending the request to the whole answer read."""
    transport: TransportReport | None = None
    """What the transport carried exactly (JSON text: whether every value was a float32)."""
    model_version: str | None = None
    """The version the answer says computed it (v2's `model_version`); None: it does not say."""


class EndpointClient:
    """One connection to one endpoint. Not thread-safe: one per thread; close() it."""

    def __init__(self, spec: EndpointSpec, *, auth: Auth, timeout: float, replica_header: str | None = None,
                 expected_outputs: Mapping[str, str] | None = None):
        """Connect lazily (the first request opens the connection). `expected_outputs` (name -> numpy dtype
        name): what TF Serving's answers hold when they do not say (a lone output is unnamed there)."""
        require_supported(spec)
        self.spec = spec
        self.auth = auth
        self.timeout = timeout
        self.replica_header = replica_header
        self.expected_outputs = expected_outputs
        self._connection: http.client.HTTPConnection | None = None

    # -- the protocol ----------------------------------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray], *, timeout: float | None = None) -> Answer:
        """Send `inputs` (name -> array, batch first) and return the outputs; EndpointError on any failure."""
        if self.spec.protocol == "v2":
            body = encode_v2_request(inputs)
            path = f"{self._v2_model_path()}/infer"
        else:
            body = encode_tfserving_request(inputs, SIGNATURE_NAME)
            path = f"{self._tfserving_model_path()}:predict"
        started = time.perf_counter()
        status, headers, raw = self._request("POST", path, body, timeout)
        if status != 200:
            raise self._status_error(status, raw, "inference")
        try:
            if self.spec.protocol == "v2":
                decoded = decode_v2_outputs(raw)
            else:
                decoded = decode_tfserving_outputs(raw, self.expected_outputs)
        except ValueError as error:
            raise EndpointError("endpoint-protocol", f"{self.spec}: the answer is not a {self._protocol_name()} "
                                f"inference response: {error}") from None
        replica = headers.get(self.replica_header.lower()) if self.replica_header else None
        return Answer(outputs=decoded.outputs, replica=replica, elapsed_s=time.perf_counter() - started,
                      transport=decoded.transport, model_version=decoded.model_version)

    def metadata(self) -> dict[str, Any]:
        """What the server says about the model as it serves it by default, whatever version the spec names
        (so that the versions it lists can be checked against the one asked for): v2 model and server metadata,
        TF Serving's status and signature metadata, as raw JSON records. The first is required; a later one the
        server does not offer (404/405/501: KServe's v1 has no /metadata) is left out."""
        model = _quote(self.spec.model)
        if self.spec.protocol == "v2":
            wanted = {"model": f"/v2/models/{model}", "server": "/v2"}
        else:
            wanted = {"status": f"/v1/models/{model}", "metadata": f"/v1/models/{model}/metadata"}
        found: dict[str, Any] = {}
        for name, path in wanted.items():
            status, _, raw = self._request("GET", path, None, None)
            if status == 200:
                found[name] = _json_or_none(raw)
            elif status in (404, 405, 501) and name != next(iter(wanted)):
                continue  # an optional record this server does not offer (KServe's v1 has no /metadata)
            else:
                raise self._status_error(status, raw, f"{name} request")
        return found

    def close(self) -> None:
        """Close the connection (the client may be used again: it reconnects)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- paths ---------------------------------------------------------------------------------------------

    def _v2_model_path(self) -> str:
        version = f"/versions/{_quote(self.spec.version)}" if self.spec.version else ""
        return f"/v2/models/{_quote(self.spec.model)}{version}"

    def _tfserving_model_path(self) -> str:
        version = self.spec.version
        if version is None:
            return f"/v1/models/{_quote(self.spec.model)}"
        kind = "versions" if version.isdigit() else "labels"
        return f"/v1/models/{_quote(self.spec.model)}/{kind}/{_quote(version)}"

    def _protocol_name(self) -> str:
        return "v2 (Open Inference Protocol)" if self.spec.protocol == "v2" else "TF Serving REST"

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | None,
                 timeout: float | None) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-cased headers, body); EndpointError when no answer came. One retry on a kept-alive
        connection the server had closed meanwhile (only then: a request is never sent twice otherwise)."""
        headers = {"Accept": "application/json", **self.auth.headers()}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self._connection is not None
            connection = self._connect(timeout)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                answer_headers = {name.lower(): value for name, value in response.getheaders()}
                if response.will_close:
                    self.close()
                return response.status, answer_headers, raw
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.close()
                if reused and attempt == 1:
                    continue
                raise EndpointError("endpoint-disconnected", f"{self.spec}: the server closed the connection "
                                    f"without answering ({_reason(error)})") from None
            except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
                self.close()
                limit = timeout if timeout is not None else self.timeout
                raise EndpointError("endpoint-timeout", f"{self.spec}: no answer within {limit:g} s") from None
            except ssl.SSLError as error:
                self.close()
                raise EndpointError("endpoint-tls", f"{self.spec}: TLS failed: {_reason(error)}") from None
            except (OSError, http.client.HTTPException) as error:
                self.close()
                raise EndpointError("endpoint-unreachable", f"cannot reach {self.spec}: {_reason(error)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        limit = self.timeout if timeout is None else timeout
        if self._connection is None:
            if self.spec.scheme == "https":
                self._connection = http.client.HTTPSConnection(self.spec.host, self.spec.port, timeout=limit,
                                                               context=self._tls_context())
            else:
                self._connection = http.client.HTTPConnection(self.spec.host, self.spec.port, timeout=limit)
        else:
            self._connection.timeout = limit
            if self._connection.sock is not None:
                self._connection.sock.settimeout(limit)
        return self._connection

    def _tls_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=str(self.auth.ca_bundle) if self.auth.ca_bundle else None)
            if self.auth.client_cert:
                context.load_cert_chain(str(self.auth.client_cert),
                                        str(self.auth.client_key) if self.auth.client_key else None)
        except (OSError, ssl.SSLError) as error:
            raise EndpointError("endpoint-tls", f"{self.spec}: cannot load the TLS files: {_reason(error)}") from None
        return context

    def _status_error(self, status: int, raw: bytes, what: str) -> EndpointError:
        """The error for an HTTP status other than 200, with the start of the server's own message."""
        meaning = {401: "unauthorized: the token is missing or wrong", 403: "forbidden: the token may not do this",
                   404: "not found: no such model or version", 503: "unavailable: the model is not ready"}
        said = self.auth.redact(_error_text(raw))
        reason = meaning.get(status, http.client.responses.get(status, "error").lower())
        return EndpointError(f"endpoint-http-{status}", f"{self.spec}: {what} answered HTTP {status} ({reason})"
                             + (f": {said}" if said else ""), status=status)


def open_client(spec: EndpointSpec, *, auth: Auth, timeout: float, replica_header: str | None = None,
                expected_outputs: Mapping[str, str] | None = None) -> EndpointClient:
    """A client of `spec` with its own connection (opened on the first request); see EndpointClient."""
    if spec.transport == "grpc":
        require_supported(spec)
        from envcheck.targets.endpoint_grpc import GrpcEndpointClient  # grpcio: optional, imported when used

        return GrpcEndpointClient(spec, auth=auth, timeout=timeout, replica_header=replica_header,
                                  expected_outputs=expected_outputs)
    return EndpointClient(spec, auth=auth, timeout=timeout, replica_header=replica_header,
                          expected_outputs=expected_outputs)


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_text(raw: bytes) -> str:
    """The server's error message, one line and short: its JSON `error` field, or the start of its text."""
    parsed = _json_or_none(raw)
    text = parsed.get("error") if isinstance(parsed, dict) and isinstance(parsed.get("error"), str) else None
    if text is None:
        text = raw.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text[:ERROR_BODY_CHARS] + ("…" if len(text) > ERROR_BODY_CHARS else "")


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
