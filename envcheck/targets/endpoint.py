"""Endpoint targets: a running model server (TF Serving REST, the Open Inference Protocol v2) checked as a
black box. `v2+http://HOST:PORT/MODEL`, `tfserving+http://HOST:8501/MODEL[@VERSION]` (docs/endpoints.md).

The golden's inputs go out in batches the server accepts; the answers, put back in golden order, are the
capture's outputs and are judged like any target's. What a black box can tell is its fingerprint, the
`endpoint` section: the protocol, the version it says it serves, its platform and server strings, the
signature it declares, and what the transport carried (JSON text: whether it carried every float32 exactly).
Its golden side, target_info["expected"] (compare/evaluate.py compares the capture with it, not with the golden
machine's fingerprint), is the same record with the golden's signature (read from inputs.npz and expected.npz:
no TensorFlow here) and the version asked for, so a renamed input or another version is a fingerprint
difference naming it, and an inexact transport is told apart from drift.

Asked for (`ServingChecks`: --repeat, --concurrency), the run goes on once the answers are in: the golden set
sent R more times over fresh connections (targets/replicas.py) and closed-loop clients under load
(targets/load.py); their records are kept in target_info["replicas"] and ["load"], judged by compare/serving.py.

Nothing here writes the token, a header, or anything the spec does not already say.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envcheck.errors import UsageError
from envcheck.model import Capture, TargetFailure
from envcheck.targets.base import CANCELLED
from envcheck.targets.endpoint_client import (
    Auth,
    EndpointClient,
    EndpointError,
    EndpointSpec,
    open_client,
    parse_endpoint_spec,
    require_supported,
)
from envcheck.targets.endpoint_codec import TransportReport, tfserving_signature, v2_signature
from envcheck.targets.load import LoadProgress, run_load
from envcheck.targets.replicas import check_replicas

KIND = "endpoint"
DEFAULT_BATCH = 64
"""Rows per request when neither the server nor the golden says: small enough for default body limits."""
ANY = -1
"""A dimension of any size, as v2 and TF Serving write it."""


@dataclass(frozen=True)
class ServingChecks:
    """What is asked of an endpoint beyond one pass of the golden set (docs/endpoints.md, "Replicas and load")."""

    repeat: int | None = None
    """--repeat: send the golden set this many more times, each over a fresh connection, and group the answers."""
    replica_header: str | None = None
    """--replica-header: the response header that names the replica which answered."""
    concurrency: int | None = None
    """--concurrency: closed-loop clients of the load run (None: no load run)."""
    duration_s: float | None = None
    """--duration: the load run's length."""
    requests: int | None = None
    """--requests: the load run's request count (with --duration too: whichever comes first)."""

    @classmethod
    def from_options(cls, repeat: int | None = None, replica_header: str | None = None,
                     concurrency: int | None = None, duration_s: float | None = None,
                     requests: int | None = None) -> ServingChecks | None:
        """The checks the options ask for (None: none); UsageError, one line, for options that do not fit."""
        if repeat is not None and repeat < 2:
            raise UsageError(f"--repeat must be at least 2 (one answer set cannot disagree with itself), got {repeat}")
        if replica_header is not None and repeat is None:
            raise UsageError("--replica-header names the replica of each --repeat answer: give --repeat R too")
        if concurrency is not None and concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
        bounded = duration_s is not None or requests is not None
        if concurrency is not None and not bounded:
            raise UsageError("--concurrency needs a bound: --duration SECONDS or --requests COUNT")
        if concurrency is None and bounded:
            raise UsageError("--duration and --requests bound a load run: give --concurrency N too")
        if (duration_s is not None and duration_s <= 0) or (requests is not None and requests < 1):
            raise UsageError("--duration must be above 0 seconds and --requests at least 1")
        if repeat is None and concurrency is None:
            return None
        return cls(repeat, replica_header, concurrency, duration_s, requests)


def with_serving_checks(targets: list[Any], checks: ServingChecks | None) -> list[Any]:
    """`targets` with `checks` given to each endpoint target; UsageError when there is none to give them to
    (the options would silently do nothing)."""
    if checks is None:
        return targets
    if not any(isinstance(target, EndpointTarget) for target in targets):
        raise UsageError("--repeat, --replica-header, --concurrency, --duration and --requests apply to endpoint "
                         "targets only (v2+http://HOST:PORT/MODEL, tfserving+http://HOST:8501/MODEL); none is given")
    return [dataclasses.replace(target, serving=checks) if isinstance(target, EndpointTarget) else target
            for target in targets]


@dataclass(frozen=True)
class EndpointTarget:
    """A serving endpoint: the golden's inputs are sent, the answers judged; no probe runs there."""

    spec: str
    endpoint: EndpointSpec
    auth: Auth = field(default_factory=Auth, repr=False)
    batch_size: int | None = None
    """Most rows per request; None: the server's fixed batch dimension, else the golden's batch size."""
    serving: ServingChecks | None = None
    """Replica and load runs after the answers are in (None: none)."""

    @classmethod
    def from_spec(cls, spec: str, auth: Auth | None = None) -> EndpointTarget:
        """The target a spec names (UsageError for a bad one)."""
        endpoint = parse_endpoint_spec(spec)
        require_supported(endpoint)
        return cls(spec=spec, endpoint=endpoint, auth=auth or Auth())

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
        """Send the golden's inputs and return the answers as a capture; any endpoint error is a TargetFailure."""
        info: dict[str, Any] = {"kind": KIND, "endpoint": str(self.endpoint)}
        started = time.monotonic()
        deadline = started + timeout
        golden = GoldenSignature.read(bundle_dir)
        client = open_client(self._inferring(), auth=self.auth, timeout=timeout, expected_outputs=golden.output_dtypes)
        try:
            served = describe(self.endpoint, _metadata(client, deadline))
            outputs: dict[str, np.ndarray] = {}
            if _can_infer(golden_record(golden, served, self.endpoint.version)["endpoint"], served):
                outputs, transport, version, batch = infer_all(client, golden, self._batch(golden, served), deadline)
                served["model_version"] = version or served["model_version"]
                served["transport"] = transport.record()
                info.update(self._serving_records(golden, batch, deadline))
        except EndpointError as error:
            return TargetFailure(spec=self.spec, kind=error.kind, message=self.auth.redact(str(error)),
                                 target_info=info, timings={"total": time.monotonic() - started})
        finally:
            client.close()
        # Without outputs (another signature or version), the fingerprint names why; the outputs are then missing.
        info["expected"] = golden_record(golden, served, self.endpoint.version)
        return Capture(spec=self.spec, fingerprint={"endpoint": served}, outputs=outputs, target_info=info,
                       timings={"total": time.monotonic() - started})

    def _serving_records(self, golden: GoldenSignature, batch: int, deadline: float) -> dict[str, Any]:
        """The replica and load records the checks ask for, sent as the answers were (`batch` rows a request; the
        load run one sample a request); each request may take what is left of the target's timeout."""
        checks, records = self.serving, dict[str, Any]()
        if checks is None:
            return records
        if checks.repeat:
            result = check_replicas(self._inferring(), self.auth, golden.batches(batch), checks.repeat,
                                    checks.replica_header, timeout=_remaining(self.endpoint, deadline),
                                    expected_outputs=golden.output_dtypes)
            records["replicas"] = result.record()
        if checks.concurrency:
            # Plain progress lines: `check`'s own live display already holds the terminal.
            with LoadProgress(f"{self.spec} under load", live=False) as progress:
                load = run_load(self._inferring(), self.auth, golden.batches(1)[0], concurrency=checks.concurrency,
                                duration_s=checks.duration_s, requests=checks.requests,
                                timeout=_remaining(self.endpoint, deadline), expected_outputs=golden.output_dtypes,
                                progress=progress)
            records["load"] = load.record()
        return records

    def _inferring(self) -> EndpointSpec:
        """The spec requests go to: TF Serving addresses a version in its paths; KServe's v2 refuses versioned
        paths (501), so a v2 version is checked against what the answers and metadata say instead."""
        if self.endpoint.protocol == "tfserving":
            return self.endpoint
        return dataclasses.replace(self.endpoint, version=None)

    def _batch(self, golden: GoldenSignature, served: dict[str, Any]) -> int:
        if self.batch_size:
            return self.batch_size
        fixed = {shape[0] for shape in _input_shapes(served) if shape and shape[0] > 0}
        return min(fixed) if fixed else golden.batch_size


@dataclass(frozen=True)
class GoldenSignature:
    """What the golden feeds and expects, as a served signature would declare it (batch dimension: any)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, dict[str, Any]]
    """Output name -> {dtype, shape}."""
    batch_size: int

    @classmethod
    def read(cls, bundle_dir: Path) -> GoldenSignature:
        """From the bundle's inputs.npz and expected.npz (and manifest's batch_size)."""
        import json

        with np.load(Path(bundle_dir) / "inputs.npz") as stored:
            inputs = {name: stored[name] for name in stored.files}
        with np.load(Path(bundle_dir) / "expected.npz") as stored:
            outputs = {name: {"dtype": stored[name].dtype.name, "shape": [ANY, *stored[name].shape[1:]]}
                       for name in stored.files}
        manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text(encoding="utf-8"))
        return cls(inputs=inputs, outputs=outputs, batch_size=int(manifest.get("batch_size") or DEFAULT_BATCH))

    @property
    def output_dtypes(self) -> dict[str, str]:
        """Output name -> numpy dtype name (how TF Serving's untyped answers are read)."""
        return {name: record["dtype"] for name, record in self.outputs.items()}

    @property
    def rows(self) -> int:
        """How many samples the golden input set holds."""
        return len(next(iter(self.inputs.values())))

    def batches(self, rows: int) -> list[dict[str, np.ndarray]]:
        """The golden inputs in requests of at most `rows` samples, in golden order."""
        return [{name: array[start:start + rows] for name, array in self.inputs.items()}
                for start in range(0, self.rows, rows)]

    def signature(self) -> dict[str, Any]:
        """{inputs, outputs}: name -> {dtype, shape}, as `describe` writes a served one."""
        return {"inputs": {name: {"dtype": array.dtype.name, "shape": [ANY, *array.shape[1:]]}
                           for name, array in sorted(self.inputs.items())},
                "outputs": dict(sorted(self.outputs.items()))}


def _metadata(client: EndpointClient, deadline: float) -> dict[str, Any]:
    client.timeout = _remaining(client.spec, deadline)
    return client.metadata()


def describe(endpoint: EndpointSpec, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The `endpoint` fingerprint section from what the server said (a field it did not say: None)."""
    if endpoint.protocol == "v2":
        model = metadata.get("model") or {}
        server = metadata.get("server") or {}
        signature = {"inputs": _by_name(v2_signature(model.get("inputs"))),
                     "outputs": _by_name(v2_signature(model.get("outputs")))}
        versions = model.get("versions") or None
        return {"protocol": "v2", "model": endpoint.model, "model_version": None,
                "versions": [str(version) for version in versions] if versions else None,
                "platform": model.get("platform") or None,
                "server": " ".join(str(server[key]) for key in ("name", "version") if server.get(key)) or None,
                "signature": signature if signature["inputs"] or signature["outputs"] else None}
    status = metadata.get("status") or {}
    versions = [str(each.get("version")) for each in status.get("model_version_status") or []
                if isinstance(each, dict) and each.get("state", "AVAILABLE") == "AVAILABLE"] or None
    spec = (metadata.get("metadata") or {}).get("model_spec") or {}
    signature_def = (((metadata.get("metadata") or {}).get("metadata") or {}).get("signature_def") or {})
    serving = (signature_def.get("signature_def") or {}).get("serving_default")
    return {"protocol": "tfserving", "model": endpoint.model, "model_version": spec.get("version") or
            (versions[0] if versions and len(versions) == 1 else None), "versions": versions, "platform": None,
            "server": None,
            "signature": None if not serving else {"inputs": _by_name(tfserving_signature(serving.get("inputs"))),
                                                   "outputs": _by_name(tfserving_signature(serving.get("outputs")))}}


def _by_name(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Signature records keyed by name, so that a renamed tensor is a removed and an added name."""
    return {str(record["name"]): {"dtype": record["dtype"], "shape": record["shape"]} for record in records}


def golden_record(golden: GoldenSignature, served: dict[str, Any], version: str | None) -> dict[str, Any]:
    """The golden side of the `endpoint` section: the served record with the golden's signature, the version
    asked for and a transport that carried every float32 exactly. A dimension the server leaves open (-1), and
    the batch dimension, take the served value: any size is ours too, and how many rows a request holds is no
    part of the model."""
    expected = {**served, "model_version": version if version is not None else served.get("model_version")}
    if served.get("transport"):  # a lossless transport: the rounding shown beside, per output, is the evidence
        expected["transport"] = {**served["transport"], "lossless": True, "float32_exact": True,
                                 "max_rounding_ulp": 0.0}
    if served.get("signature") is not None:
        expected["signature"] = {part: {name: _as_served(record, served["signature"][part].get(name))
                                        for name, record in tensors.items()}
                                 for part, tensors in golden.signature().items()}
    return {"endpoint": expected}


def _as_served(golden: dict[str, Any], served: dict[str, Any] | None) -> dict[str, Any]:
    served_shape = (served or {}).get("shape")
    if served_shape is None or len(served_shape) != len(golden["shape"]):
        return golden
    shape = [theirs if index == 0 or theirs == ANY else ours
             for index, (ours, theirs) in enumerate(zip(golden["shape"], served_shape, strict=True))]
    return {**golden, "shape": shape}


def _can_infer(expected: dict[str, Any], served: dict[str, Any]) -> bool:
    """Whether the answers could mean anything: the inputs as the golden's and the version asked for (when the
    server lists its versions). Otherwise the fingerprint names the difference and no request is sent."""
    if expected.get("signature") and expected["signature"]["inputs"] != (served.get("signature") or {}).get("inputs"):
        return False
    wanted, listed = expected.get("model_version"), served.get("versions")
    return not (wanted is not None and listed and wanted not in listed)


def _input_shapes(served: dict[str, Any]) -> list[list[int]]:
    return [record.get("shape") or [] for record in ((served.get("signature") or {}).get("inputs") or {}).values()]


def infer_all(client: EndpointClient, golden: GoldenSignature, batch: int, deadline: float,
              ) -> tuple[dict[str, np.ndarray], TransportReport, str | None, int]:
    """Every golden row through the server, `batch` rows a request, halving on a request the server
    rejects (400/413/422: too large); the outputs in golden order, what the transport carried, the model
    version the answers named (None: they named none) and the most rows a request carried (what later runs
    send)."""
    parts: list[dict[str, np.ndarray]] = []
    transport: TransportReport | None = None
    version: str | None = None
    for rows in _batches(client, golden, batch, deadline):
        parts.append(rows.outputs)
        transport = rows.transport.merged(transport) if rows.transport else transport
        version = rows.version or version
    names = parts[0].keys() if parts else ()
    outputs = {name: np.concatenate([part[name] for part in parts]) for name in names}
    accepted = max((len(next(iter(part.values()))) for part in parts if part), default=batch)
    return outputs, transport or TransportReport(format="json", outputs={}), version, accepted


@dataclass(frozen=True)
class _Rows:
    outputs: dict[str, np.ndarray]
    transport: TransportReport | None
    version: str | None


def _batches(client: EndpointClient, golden: GoldenSignature, batch: int, deadline: float) -> Iterator[_Rows]:
    start, total = 0, golden.rows
    while start < total:
        if CANCELLED.is_set():
            raise EndpointError("cancelled", f"{client.spec}: cancelled")
        size = min(batch, total - start)
        try:
            client.timeout = _remaining(client.spec, deadline)
            answer = client.infer({name: array[start:start + size] for name, array in golden.inputs.items()})
        except EndpointError as error:
            if not error.rejected_request or size == 1:
                raise
            batch = max(1, size // 2)  # the server's body or batch limit: ask again with fewer rows
            continue
        short = [name for name, array in answer.outputs.items() if len(array) != size]
        if short:
            raise EndpointError("endpoint-protocol", f"{client.spec}: sent {size} rows, output {short[0]!r} "
                                f"has {len(answer.outputs[short[0]])}")
        yield _Rows(outputs=answer.outputs, transport=answer.transport, version=answer.model_version)
        start += size


def _remaining(spec: object, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise EndpointError("endpoint-timeout", f"{spec}: the run did not finish within its timeout")
    return left
