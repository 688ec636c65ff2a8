"""gRPC clients of serving endpoints: the Open Inference Protocol's GRPCInferenceService (`v2+grpc://`) and TF
Serving's PredictionService (`tfserving+grpc://`), with the same face as the HTTP client (endpoint_client.py):
`infer`, `metadata`, `close`, every failure an EndpointError of one line that never holds the token.

Tensors travel as bytes: v2 inputs as `raw_input_contents`, TF Serving's as TensorProto `tensor_content`, both
little-endian; answers are read from raw bytes, `tensor_content` or the typed repeated fields (protobuf's `float`
is four IEEE bytes). No value is ever written as text, so the transport is lossless by construction: its record
says so (format `protobuf`, every float32 exact, 0 ULP of rounding). The messages are endpoint_grpc_protos.py's
(grpcio and protobuf only: the optional extra `envcheck[grpc]`; endpoint_client.require_supported says so when
they are missing).

`metadata` returns the records the HTTP APIs return, in their JSON shapes (protobuf's JSON mapping with proto
field names, as TF Serving's REST API writes them), so endpoint.describe reads both transports alike. A bearer
token goes as `authorization` metadata; with a CA bundle or a client certificate the channel is TLS. One client
is one connection (its own subchannel pool: a load balancer sees a fresh connection per client).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from envcheck.targets.endpoint_client import SIGNATURE_NAME, Answer, Auth, EndpointClient, EndpointError, EndpointSpec
from envcheck.targets.endpoint_codec import NUMPY_DTYPES, V2_DATATYPES, OutputTransport, TransportReport
from envcheck.targets.endpoint_grpc_protos import DATA_TYPES, message_class

FORMAT = "protobuf"
"""The transport record's format: binary tensors, lossless by construction."""
MAX_MESSAGE_BYTES = 1 << 30
"""What this client accepts in one answer (gRPC's default, 4 MiB, is less than a golden's batch may need)."""
V2_SERVICE = "/inference.GRPCInferenceService"
TFSERVING_SERVICE = "/tensorflow.serving.PredictionService"
TFSERVING_MODEL_SERVICE = "/tensorflow.serving.ModelService"

DTYPES_BY_TF = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_INT8": "int8",
                "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64", "DT_UINT8": "uint8",
                "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64", "DT_BOOL": "bool"}
TF_DATA_TYPES = {dtype: DATA_TYPES[name] for name, dtype in DTYPES_BY_TF.items()}
"""numpy dtype name -> TensorProto's dtype number."""
TENSOR_VALUES = {"float32": "float_val", "float64": "double_val", "int8": "int_val", "int16": "int_val",
                 "int32": "int_val", "uint8": "int_val", "uint16": "int_val", "int64": "int64_val",
                 "uint32": "uint32_val", "uint64": "uint64_val", "bool": "bool_val", "float16": "half_val"}
"""Where a TensorProto without tensor_content keeps its values, by numpy dtype (tensor.proto's comments)."""
V2_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents", "INT16": "int_contents",
               "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
               "UINT32": "uint_contents", "UINT64": "uint64_contents", "BOOL": "bool_contents"}
"""Where a v2 tensor without raw contents keeps its values (FP16 has no typed field: raw only)."""

STATUS_AS_HTTP = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
                  "RESOURCE_EXHAUSTED": 413, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503}
"""The HTTP status EndpointError.status carries for a gRPC code (google.rpc's mapping, except RESOURCE_EXHAUSTED:
gRPC's code for a message over the size limit, which a smaller batch passes, as HTTP's 413)."""
STATUS_MEANING = {"UNAUTHENTICATED": "the token is missing or wrong", "PERMISSION_DENIED": "the token may not do this",
                  "NOT_FOUND": "no such model or version", "UNAVAILABLE": "the server or the model is not available",
                  "UNIMPLEMENTED": "the server does not offer this method"}
DETAIL_CHARS = 200


class GrpcEndpointClient(EndpointClient):
    """One gRPC channel to one endpoint (opened on the first call). Not thread-safe: one per thread; close() it.

    NOTE: a subclass of the HTTP client only so that it goes wherever an EndpointClient does (open_client's
    type, replicas.py's and load.py's `connect`); it overrides the whole protocol and never opens HTTP."""

    def __init__(self, spec: EndpointSpec, *, auth: Auth, timeout: float, replica_header: str | None = None,
                 expected_outputs: Mapping[str, str] | None = None):
        """As EndpointClient; `expected_outputs` is not needed: gRPC answers name and type every output."""
        super().__init__(spec, auth=auth, timeout=timeout, replica_header=replica_header,
                         expected_outputs=expected_outputs)
        self._channel: grpc.Channel | None = None

    def infer(self, inputs: dict[str, np.ndarray], *, timeout: float | None = None) -> Answer:
        """Send `inputs` (name -> array, batch first) and return the outputs; EndpointError on any failure."""
        started = time.perf_counter()
        if self.spec.protocol == "v2":
            response, call = self._call(V2_SERVICE, "ModelInfer", self._v2_request(inputs), "inference", timeout)
            outputs, version = self._read(decode_v2_response, response)
        else:
            response, call = self._call(TFSERVING_SERVICE, "Predict", self._tfserving_request(inputs), "inference",
                                        timeout)
            outputs, version = self._read(decode_predict_response, response)
        return Answer(outputs=outputs, replica=self._replica(call), elapsed_s=time.perf_counter() - started,
                      transport=lossless_transport(outputs), model_version=version)

    def metadata(self) -> dict[str, Any]:
        """What the server says about the model as it serves it by default, as the REST API's records: v2 `model`
        (ModelMetadata; required, and ModelReady must say ready) and `server` (ServerMetadata); TF Serving
        `metadata` (GetModelMetadata's signature_def; required) and `status` (ModelService's GetModelStatus). An
        optional one the server does not implement is left out."""
        if self.spec.protocol == "v2":
            found = {"model": self._record(V2_SERVICE, "ModelMetadata", "inference.ModelMetadataRequest",
                                           "model metadata request", name=self.spec.model)}
            self._require_ready()
            server = self._optional_record(V2_SERVICE, "ServerMetadata", "inference.ServerMetadataRequest",
                                           "server metadata request")
            return {**found, "server": server} if server is not None else found
        found = {"metadata": self._tfserving_metadata()}
        status = self._optional_record(TFSERVING_MODEL_SERVICE, "GetModelStatus",
                                       "tensorflow.serving.GetModelStatusRequest", "status request",
                                       model_spec={"name": self.spec.model})
        return {**found, "status": status} if status is not None else found

    def close(self) -> None:
        """Close the channel (the client may be used again: it reconnects)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- requests ------------------------------------------------------------------------------------------

    def _v2_request(self, inputs: Mapping[str, np.ndarray]) -> Any:
        request = message_class("inference.ModelInferRequest")(model_name=self.spec.model,
                                                               model_version=self.spec.version or "")
        for name, array in inputs.items():
            datatype = V2_DATATYPES.get(array.dtype.name)
            if datatype is None:
                raise EndpointError("endpoint-protocol", f"{self.spec}: input {name!r} of dtype {array.dtype} "
                                    "has no v2 datatype")
            request.inputs.add(name=name, datatype=datatype, shape=array.shape)
            request.raw_input_contents.append(_little_endian(array).tobytes())
        return request

    def _tfserving_request(self, inputs: Mapping[str, np.ndarray]) -> Any:
        request = message_class("tensorflow.serving.PredictRequest")()
        self._model_spec(request.model_spec, self.spec.version)
        for name, array in inputs.items():
            if array.dtype.name not in TF_DATA_TYPES:
                raise EndpointError("endpoint-protocol", f"{self.spec}: input {name!r} of dtype {array.dtype} "
                                    "has no TensorProto dtype here")
            tensor = request.inputs[name]
            tensor.dtype = TF_DATA_TYPES[array.dtype.name]
            tensor.tensor_shape.dim.extend(message_class("tensorflow.TensorShapeProto.Dim")(size=size)
                                           for size in array.shape)
            tensor.tensor_content = _little_endian(array).tobytes()
        return request

    def _model_spec(self, model_spec: Any, version: str | None) -> None:
        """TF Serving's ModelSpec: a numeric version is a version, another word a version label."""
        model_spec.name = self.spec.model
        model_spec.signature_name = SIGNATURE_NAME
        if version is not None and version.isdigit():
            model_spec.version.value = int(version)
        elif version is not None:
            model_spec.version_label = version

    def _tfserving_metadata(self) -> dict[str, Any]:
        """GetModelMetadata as the REST API's `/metadata` record: {model_spec, metadata: {signature_def: …}}."""
        request = message_class("tensorflow.serving.GetModelMetadataRequest")(metadata_field=["signature_def"])
        self._model_spec(request.model_spec, None)
        response, _ = self._call(TFSERVING_SERVICE, "GetModelMetadata", request, "metadata request", None)
        packed = response.metadata.get("signature_def")
        try:
            signatures = message_class("tensorflow.serving.SignatureDefMap").FromString(packed.value) if packed else None
        except DecodeError as error:
            raise EndpointError("endpoint-protocol", f"{self.spec}: the metadata's signature_def is not a "
                                f"SignatureDefMap ({error})") from None
        return {"model_spec": _as_dict(response.model_spec),
                "metadata": {"signature_def": _as_dict(signatures)} if signatures is not None else {}}

    def _require_ready(self) -> None:
        ready, _ = self._call(V2_SERVICE, "ModelReady", message_class("inference.ModelReadyRequest")(
            name=self.spec.model), "model ready request", None)
        if not ready.ready:
            raise EndpointError("endpoint-grpc-unavailable", f"{self.spec}: the model is not ready (ModelReady "
                                "answered false)", status=STATUS_AS_HTTP["UNAVAILABLE"])

    def _record(self, service: str, method: str, request_type: str, what: str, **fields: Any) -> dict[str, Any]:
        response, _ = self._call(service, method, message_class(request_type)(**fields), what, None)
        return _as_dict(response)

    def _optional_record(self, service: str, method: str, request_type: str, what: str,
                         **fields: Any) -> dict[str, Any] | None:
        """The record, or None when the server does not implement the method."""
        try:
            return self._record(service, method, request_type, what, **fields)
        except EndpointError as error:
            if error.status == STATUS_AS_HTTP["UNIMPLEMENTED"]:
                return None
            raise

    # -- gRPC ----------------------------------------------------------------------------------------------

    def _call(self, service: str, method: str, request: Any, what: str, timeout: float | None) -> tuple[Any, Any]:
        """(response, call) of one unary call; EndpointError naming the endpoint when it fails."""
        response_type = message_class(_response_type(request))
        stub = self._open_channel().unary_unary(f"{service}/{method}", request_serializer=_serialize,
                                           response_deserializer=response_type.FromString)
        limit = self.timeout if timeout is None else timeout
        try:
            return stub.with_call(request, timeout=limit, metadata=_metadata(self.auth))
        except grpc.RpcError as error:
            raise self._rpc_error(error, what, limit) from None

    def _open_channel(self) -> grpc.Channel:
        if self._channel is None:
            # A subchannel pool of its own: without it gRPC shares one connection among the process's channels.
            options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.use_local_subchannel_pool", 1)]
            target = self.spec.address
            credentials = self._tls_credentials()
            self._channel = (grpc.secure_channel(target, credentials, options=options) if credentials else
                             grpc.insecure_channel(target, options=options))
        return self._channel

    def _tls_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS when a CA bundle or a client certificate is given (a grpc:// spec names no scheme of its own)."""
        if not (self.auth.ca_bundle or self.auth.client_cert):
            return None
        try:
            return grpc.ssl_channel_credentials(
                root_certificates=self.auth.ca_bundle.read_bytes() if self.auth.ca_bundle else None,
                private_key=self.auth.client_key.read_bytes() if self.auth.client_key else None,
                certificate_chain=self.auth.client_cert.read_bytes() if self.auth.client_cert else None)
        except OSError as error:
            raise EndpointError("endpoint-tls", f"{self.spec}: cannot load the TLS files: "
                                f"{error.strerror or error}") from None

    def _rpc_error(self, error: grpc.RpcError, what: str, limit: float) -> EndpointError:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        detail = self.auth.redact(_one_line(error.details() if isinstance(error, grpc.Call) else str(error)))
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return EndpointError("endpoint-timeout", f"{self.spec}: no answer within {limit:g} s")
        if code == grpc.StatusCode.UNAVAILABLE and _connection_failed(detail):
            return EndpointError("endpoint-unreachable", f"cannot reach {self.spec}: {detail}")
        meaning = STATUS_MEANING.get(code.name)
        return EndpointError(f"endpoint-grpc-{code.name.lower().replace('_', '-')}",
                             f"{self.spec}: {what} answered gRPC {code.name}" + (f" ({meaning})" if meaning else "")
                             + (f": {detail}" if detail else ""), status=STATUS_AS_HTTP.get(code.name))

    def _read(self, decode: Any, response: Any) -> tuple[dict[str, np.ndarray], str | None]:
        try:
            return decode(response)
        except ValueError as error:
            raise EndpointError("endpoint-protocol", f"{self.spec}: the answer is not a readable "
                                f"{'v2' if self.spec.protocol == 'v2' else 'TF Serving'} inference response: "
                                f"{error}") from None

    def _replica(self, call: Any) -> str | None:
        """The replica the answer's initial metadata names (gRPC keys are lower case), when one was asked for."""
        if not self.replica_header:
            return None
        wanted = self.replica_header.lower()
        found = [value for key, value in call.initial_metadata() or () if key == wanted]
        return str(found[0]) if found else None


def decode_v2_response(response: Any) -> tuple[dict[str, np.ndarray], str | None]:
    """A ModelInferResponse's outputs by name (raw_output_contents, else the typed contents) and model_version."""
    raw = list(response.raw_output_contents)
    if raw and len(raw) != len(response.outputs):
        raise ValueError(f"{len(response.outputs)} outputs but {len(raw)} raw_output_contents")
    outputs = {}
    for index, tensor in enumerate(response.outputs):
        dtype = NUMPY_DTYPES.get(tensor.datatype)
        if dtype is None:
            raise ValueError(f"output {tensor.name!r}: unknown datatype {tensor.datatype!r}")
        if raw:
            values = _from_bytes(raw[index], dtype, tensor.name)
        elif tensor.datatype in V2_CONTENTS:
            values = np.asarray(getattr(tensor.contents, V2_CONTENTS[tensor.datatype]), dtype=dtype)
        else:
            raise ValueError(f"output {tensor.name!r}: datatype {tensor.datatype} comes only as raw contents")
        outputs[tensor.name] = _shaped(values, list(tensor.shape), tensor.name)
    return outputs, response.model_version or None


def decode_predict_response(response: Any) -> tuple[dict[str, np.ndarray], str | None]:
    """A PredictResponse's outputs by name and the version its model_spec names."""
    outputs = {name: tensor_to_array(tensor, name) for name, tensor in response.outputs.items()}
    version = str(response.model_spec.version.value) if response.model_spec.HasField("version") else None
    return outputs, version


def tensor_to_array(tensor: Any, name: str) -> np.ndarray:
    """A TensorProto's values: tensor_content's bytes, else its typed field, where fewer values than the shape
    holds mean the last one repeated (TensorFlow's rule; none at all: zeros)."""
    dtype_name = _enum_name(tensor.dtype)
    dtype = DTYPES_BY_TF.get(dtype_name)
    if dtype is None:
        raise ValueError(f"output {name!r}: dtype {dtype_name} is not a numeric tensor envcheck reads")
    shape = [int(dim.size) for dim in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        return _shaped(_from_bytes(tensor.tensor_content, dtype, name), shape, name)
    stored = list(getattr(tensor, TENSOR_VALUES[dtype]))
    values = (np.asarray(stored, dtype=np.uint16).view(np.float16) if dtype == "float16"
              else np.asarray(stored, dtype=dtype))
    count = int(np.prod(shape, dtype=np.int64))
    if len(values) < count:
        values = np.full(count, values[-1] if len(values) else 0, dtype=dtype)
    return _shaped(values, shape, name)


def lossless_transport(outputs: Mapping[str, np.ndarray]) -> TransportReport:
    """The transport record of binary float32 tensors: every value exact, by construction."""
    return TransportReport(format=FORMAT, outputs={
        name: OutputTransport(values=int(array.size), float32_exact=True, max_rounding_ulp=0.0)
        for name, array in outputs.items() if array.dtype == np.float32})


def _from_bytes(raw: bytes, dtype: str, name: str) -> np.ndarray:
    wire = np.dtype(dtype).newbyteorder("<")
    if len(raw) % wire.itemsize:
        raise ValueError(f"output {name!r}: {len(raw)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(raw, dtype=wire).astype(dtype)


def _shaped(values: np.ndarray, shape: list[int], name: str) -> np.ndarray:
    try:
        return values.reshape(shape)
    except ValueError:
        raise ValueError(f"output {name!r}: {values.size} values do not fill the shape {shape}") from None


def _little_endian(array: np.ndarray) -> np.ndarray:
    """The array as the wire carries it: C order, little-endian (both protocols say so)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _enum_name(number: int) -> str:
    return next((name for name, value in DATA_TYPES.items() if value == number), f"DataType {number}")


def _as_dict(message: Any) -> dict[str, Any]:
    """protobuf's JSON mapping with proto field names, as TF Serving's REST API writes its records."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


def _response_type(request: Any) -> str:
    """The response message of a request message (`…Request` -> `…Response`, in the same package)."""
    return request.DESCRIPTOR.full_name.removesuffix("Request") + "Response"


def _metadata(auth: Auth) -> list[tuple[str, str]]:
    """The call's metadata: the bearer token as gRPC servers read it (lower-case keys)."""
    return [(key.lower(), value) for key, value in auth.headers().items()]


def _connection_failed(detail: str) -> bool:
    """gRPC's UNAVAILABLE both for a server that never answered and for one that said so; these words are the
    former's, as grpc core writes them ('failed to connect to all addresses', 'Connection refused', and for a
    name that does not resolve 'errors resolving …' or, with the c-ares resolver, 'DNS resolution failed')."""
    lowered = detail.lower()
    return any(words in lowered for words in ("failed to connect", "connection refused", "connect failed",
                                              "no route to host", "errors resolving", "dns resolution",
                                              "name resolution", "lookup failed"))


def _one_line(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else "")
