"""Numpy arrays to and from the JSON of serving APIs (Open Inference Protocol v2, TF Serving REST), and what
the JSON text carried exactly.

Requests are exact: each float32 goes out as the shortest decimal that reads back as the same float64, which
is that float32. Answers are read as their text and as float64 first, so the transport's own error is measured
apart from drift. A value that is exactly a float32 lost nothing. Any other value is rounded to the nearest
float32 (`max_rounding_ulp` says how far that went); whether that is the value the server computed cannot be
told from one number, but from the digits: 9 significant digits always name one float32, so a server seen
writing 9 (or every value exactly) is `lossless`, and one that never writes more than 6 (TF Serving did, its
issue #1332) loses bits. A server writing the shortest decimal of each float32 is lossless too, yet needs 9
digits for few values (about 1 in 200): on a golden none of whose outputs does, it is reported as not proven
lossless (`max_digits` < 9), which docs/endpoints.md explains.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "int8": "INT8", "int16": "INT16",
                "int32": "INT32", "int64": "INT64", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
                "uint64": "UINT64", "bool": "BOOL"}
NUMPY_DTYPES = {datatype: dtype for dtype, datatype in V2_DATATYPES.items()}
TF_DATATYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_INT8": "int8",
                "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64", "DT_UINT8": "uint8",
                "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64", "DT_BOOL": "bool",
                "DT_STRING": "string"}
"""TF Serving's metadata names dtypes as TensorFlow's DataType enum does."""


FLOAT32_DIGITS = 9
"""Significant digits that always name one float32 exactly (float32's max_digits10)."""


@dataclass(frozen=True)
class OutputTransport:
    """What the JSON text carried of one float output."""

    values: int
    float32_exact: bool
    """Every value read back is exactly a float32: the text lost nothing a float32 holds."""
    max_rounding_ulp: float
    """The largest distance from a value read to the float32 it was rounded to, in float32 ULP (0 … 0.5)."""
    max_digits: int | None = None
    """The most significant digits written for a value that is not exactly a float32 (None: there was none)."""

    @property
    def lossless(self) -> bool:
        """Every value arrived exactly, or the server was seen writing the 9 digits that name any float32."""
        return self.float32_exact or (self.max_digits or 0) >= FLOAT32_DIGITS

    def merged(self, other: OutputTransport) -> OutputTransport:
        """Both batches' evidence as one."""
        digits = [each for each in (self.max_digits, other.max_digits) if each is not None]
        return OutputTransport(values=self.values + other.values,
                               float32_exact=self.float32_exact and other.float32_exact,
                               max_rounding_ulp=max(self.max_rounding_ulp, other.max_rounding_ulp),
                               max_digits=max(digits) if digits else None)


@dataclass(frozen=True)
class Decoded:
    """An inference answer read: outputs by name, what the transport carried, the version the answer names."""

    outputs: dict[str, np.ndarray]
    transport: TransportReport
    model_version: str | None = None


@dataclass(frozen=True)
class TransportReport:
    """Per float output, what the transport carried; `format` names the encoding."""

    format: str
    outputs: Mapping[str, OutputTransport]

    def merged(self, other: TransportReport | None) -> TransportReport:
        """The evidence of two answers (batches) as one."""
        if other is None:
            return self
        merged = dict(self.outputs)
        for name, seen in other.outputs.items():
            merged[name] = merged[name].merged(seen) if name in merged else seen
        return TransportReport(format=self.format, outputs=merged)

    @property
    def float32_exact(self) -> bool:
        """Every float output arrived exactly as float32 values."""
        return all(each.float32_exact for each in self.outputs.values())

    @property
    def lossless(self) -> bool:
        """Every float output arrived losslessly (OutputTransport.lossless)."""
        return all(each.lossless for each in self.outputs.values())

    def record(self) -> dict[str, Any]:
        """The capture's `endpoint.transport` record."""
        return {"format": self.format, "lossless": self.lossless, "float32_exact": self.float32_exact,
                "max_rounding_ulp": max((each.max_rounding_ulp for each in self.outputs.values()), default=0.0),
                "outputs": {name: {"values": each.values, "lossless": each.lossless,
                                   "float32_exact": each.float32_exact, "max_rounding_ulp": each.max_rounding_ulp,
                                   "max_digits": each.max_digits}
                            for name, each in sorted(self.outputs.items())}}


def measure_float32(texts: Any) -> tuple[np.ndarray, OutputTransport]:
    """The values (their JSON texts, nested; or numbers) rounded to float32, and what the text carried."""
    written = np.asarray(texts, dtype=str)
    wide = written.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = wide.astype(np.float32)
        back = narrow.astype(np.float64)
        inexact = ~((back == wide) | (np.isnan(wide) & np.isnan(back)))
        finite = inexact & np.isfinite(back)
        rounding = np.abs(wide[finite] - back[finite]) / np.spacing(np.abs(narrow[finite])).astype(np.float64)
    overflowed = bool(np.any(inexact & ~np.isfinite(back)))  # a value beyond float32's range
    digits = [significant_digits(text) for text in written[inexact].tolist()]
    return narrow, OutputTransport(values=int(wide.size), float32_exact=not bool(inexact.any()),
                                   max_rounding_ulp=float("inf") if overflowed else
                                   float(rounding.max()) if rounding.size else 0.0,
                                   max_digits=max(digits) if digits else None)


def significant_digits(text: str) -> int:
    """How many significant digits a JSON number's text holds: `0.0123400` -> 4, `-1.5e-07` -> 2."""
    mantissa = text.lower().partition("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.strip("0")) or 1


def _json_values(array: np.ndarray) -> Any:
    """Nested lists of Python numbers: a float32 becomes the float64 holding it, written exactly by json."""
    if array.dtype.kind == "f":
        return array.astype(np.float64).tolist()
    return array.tolist()


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=True).encode()


def encode_v2_request(inputs: Mapping[str, np.ndarray]) -> bytes:
    """A v2 inference request: each input with its shape and datatype, data flattened (row-major)."""
    tensors = []
    for name, array in inputs.items():
        datatype = V2_DATATYPES.get(array.dtype.name)
        if datatype is None:
            raise ValueError(f"input {name!r}: dtype {array.dtype} has no v2 datatype")
        tensors.append({"name": name, "shape": list(array.shape), "datatype": datatype,
                        "data": _json_values(array.reshape(-1))})
    return _dumps({"inputs": tensors})


def encode_tfserving_request(inputs: Mapping[str, np.ndarray], signature_name: str) -> bytes:
    """A TF Serving predict request in the row format: one named record per instance (batch row)."""
    names = list(inputs)
    rows = zip(*(_json_values(inputs[name]) for name in names), strict=True)
    return _dumps({"signature_name": signature_name, "instances": [dict(zip(names, row, strict=True)) for row in rows]})


def _loads(raw: bytes) -> Any:
    """The JSON document, each non-integer number kept as its text (its digits are evidence: measure_float32)."""
    try:
        return json.loads(raw, parse_float=str)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None


def _as_output(name: str, values: Any, dtype: str | None, shape: Sequence[int] | None,
               report: dict[str, OutputTransport]) -> np.ndarray:
    """One output decoded from its texts: measured and rounded to float32, or cast to its other dtype."""
    try:
        texts = np.asarray(values, dtype=str)
        if shape is not None:
            texts = texts.reshape([int(size) for size in shape])
        if dtype in (None, "float32"):
            narrow, report[name] = measure_float32(texts)
            return narrow
        return texts.astype(np.float64).astype(dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"output {name!r}: {error}") from None


def decode_v2_outputs(raw: bytes) -> Decoded:
    """A v2 inference response: its outputs keyed by name, what the JSON carried, its `model_version`."""
    document = _loads(raw)
    tensors = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(tensors, list):
        raise ValueError("no `outputs` list")
    report: dict[str, OutputTransport] = {}
    outputs = {}
    for tensor in tensors:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or "data" not in tensor:
            raise ValueError("an output without name or data")
        dtype = NUMPY_DTYPES.get(str(tensor.get("datatype")))
        if dtype is None:
            raise ValueError(f"output {tensor['name']!r}: unknown datatype {tensor.get('datatype')!r}")
        outputs[tensor["name"]] = _as_output(tensor["name"], tensor["data"], dtype, tensor.get("shape"), report)
    version = document.get("model_version")
    return Decoded(outputs, TransportReport(format="json", outputs=report), str(version) if version else None)


def decode_tfserving_outputs(raw: bytes, expected: Mapping[str, str] | None = None) -> Decoded:
    """A TF Serving predict response (row `predictions` or columnar `outputs`), keyed by output name.
    `expected` (output name -> numpy dtype name) names a lone unnamed output and casts integer outputs; without
    it a lone output keeps TF Serving's own key and every output is read as float32."""
    document = _loads(raw)
    if not isinstance(document, dict) or not ({"predictions", "outputs"} & set(document)):
        raise ValueError("neither `predictions` nor `outputs`")
    key = "predictions" if "predictions" in document else "outputs"
    named = _tfserving_named(document[key], columnar=key == "outputs")
    if named is None:  # one unnamed output: TF Serving names it only when the signature has several
        only = next(iter(expected)) if expected and len(expected) == 1 else key
        named = {only: document[key]}
    report: dict[str, OutputTransport] = {}
    outputs = {name: _as_output(name, values, (expected or {}).get(name, "float32"), None, report)
               for name, values in named.items()}
    return Decoded(outputs, TransportReport(format="json", outputs=report))


def _tfserving_named(values: Any, columnar: bool) -> dict[str, Any] | None:
    """{output: values} when the answer names its outputs, None for a lone unnamed one."""
    if columnar:
        return dict(values) if isinstance(values, dict) else None
    if isinstance(values, list) and values and all(isinstance(row, dict) for row in values):
        names = list(values[0])
        if any(list(row) != names for row in values):
            raise ValueError("the `predictions` rows name different outputs")
        return {name: [row[name] for row in values] for name in names}
    return None


def v2_signature(tensors: Iterable[Any] | None) -> list[dict[str, Any]]:
    """v2 metadata's inputs/outputs as envcheck's signature records {name, dtype, shape} (-1: any size)."""
    records = []
    for tensor in tensors or ():
        if isinstance(tensor, dict):
            records.append({"name": tensor.get("name"),
                            "dtype": NUMPY_DTYPES.get(str(tensor.get("datatype")), tensor.get("datatype")),
                            "shape": [int(size) for size in tensor.get("shape") or []]})
    return sorted(records, key=lambda record: str(record["name"]))


def tfserving_signature(tensors: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """TF Serving signature_def inputs/outputs (TensorInfo JSON) as signature records."""
    records = []
    for name, tensor in (tensors or {}).items():
        info = tensor if isinstance(tensor, dict) else {}
        shape = info.get("tensor_shape") or {}
        dims = None if shape.get("unknown_rank") else [int(dim.get("size", -1)) for dim in shape.get("dim") or []]
        records.append({"name": name, "dtype": TF_DATATYPES.get(str(info.get("dtype")), info.get("dtype")),
                        "shape": dims})
    return sorted(records, key=lambda record: str(record["name"]))
