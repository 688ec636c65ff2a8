"""The protobuf messages of the two gRPC serving APIs, built at import from field lists copied from their
public .proto files: the Open Inference Protocol's `grpc_predict_v2.proto` (package `inference`) and TF
Serving's `predict`, `get_model_metadata`, `get_model_status` and `model` protos with the TensorFlow types they
carry (`tensor.proto`, `tensor_shape.proto`, `meta_graph.proto`, `types.proto`).

Why not the official stubs: `tensorflow-serving-api` pulls a whole second TensorFlow, and generated code ties
itself to one protobuf version. Only the fields envcheck reads or writes are declared, with the official field
numbers and types (tests/endpoint/test_endpoint_grpc.py checks each one against the official descriptors): a
field left out is skipped on the wire, as protobuf does for any unknown field. Nothing is generated at run time
and nothing needs protoc; only protobuf's descriptor API. The messages live in a pool of their own, so a process
that also imported TensorFlow or the official stubs (same full names) sees no duplicate-symbol clash.

Each field is written as the .proto writes it (`repeated int64 shape = 3`, `map<string, .pkg.Type> name = 2`);
a message name with a dot (`Outer.Inner`) is nested in Outer.
"""
from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_FieldType = descriptor_pb2.FieldDescriptorProto
SCALARS = {"double": _FieldType.TYPE_DOUBLE, "float": _FieldType.TYPE_FLOAT, "int64": _FieldType.TYPE_INT64,
           "uint64": _FieldType.TYPE_UINT64, "int32": _FieldType.TYPE_INT32, "uint32": _FieldType.TYPE_UINT32,
           "bool": _FieldType.TYPE_BOOL, "string": _FieldType.TYPE_STRING, "bytes": _FieldType.TYPE_BYTES}
_FIELD = re.compile(r"^(?:(repeated) )?(?:map<string, (?P<value>\S+)>|(?P<type>\S+)) (?P<name>\w+) = (?P<number>\d+)$")



class ProtoFile(NamedTuple):
    """One .proto file as declared here."""

    name: str
    package: str
    dependencies: list[str]
    enums: dict[str, dict[str, int]]
    """Enum name -> value name -> number."""
    messages: dict[str, list[str]]
    """Message name -> its field declarations."""


DATA_TYPES = {"DT_INVALID": 0, "DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5,
              "DT_INT8": 6, "DT_STRING": 7, "DT_COMPLEX64": 8, "DT_INT64": 9, "DT_BOOL": 10, "DT_BFLOAT16": 14,
              "DT_UINT16": 17, "DT_COMPLEX128": 18, "DT_HALF": 19, "DT_UINT32": 22, "DT_UINT64": 23}
"""tensorflow/core/framework/types.proto's DataType (the values a served float model uses, and their kin)."""

TENSORFLOW = ProtoFile("envcheck/tensorflow_subset.proto", "tensorflow", ["google/protobuf/wrappers.proto"], {
    "DataType": DATA_TYPES,
}, {
    "TensorShapeProto": ["repeated .tensorflow.TensorShapeProto.Dim dim = 2", "bool unknown_rank = 3"],
    "TensorShapeProto.Dim": ["int64 size = 1", "string name = 2"],
    "TensorProto": ["DataType dtype = 1", ".tensorflow.TensorShapeProto tensor_shape = 2", "int32 version_number = 3",
                    "bytes tensor_content = 4", "repeated int32 half_val = 13", "repeated float float_val = 5",
                    "repeated double double_val = 6", "repeated int32 int_val = 7", "repeated int64 int64_val = 10",
                    "repeated bool bool_val = 11", "repeated uint32 uint32_val = 16", "repeated uint64 uint64_val = 17"],
    "TensorInfo": ["string name = 1", "DataType dtype = 2", ".tensorflow.TensorShapeProto tensor_shape = 3"],
    "SignatureDef": ["map<string, .tensorflow.TensorInfo> inputs = 1", "map<string, .tensorflow.TensorInfo> outputs = 2",
                     "string method_name = 3"],
})

TFSERVING = ProtoFile("envcheck/tensorflow_serving_subset.proto", "tensorflow.serving",
             ["google/protobuf/wrappers.proto", "google/protobuf/any.proto", TENSORFLOW.name], {
                 "ModelVersionStatus.State": {"UNKNOWN": 0, "START": 10, "LOADING": 20, "AVAILABLE": 30,
                                              "UNLOADING": 40, "END": 50},
             }, {
    "ModelSpec": ["string name = 1", ".google.protobuf.Int64Value version = 2", "string version_label = 4",
                  "string signature_name = 3"],
    "PredictRequest": [".tensorflow.serving.ModelSpec model_spec = 1",
                       "map<string, .tensorflow.TensorProto> inputs = 2", "repeated string output_filter = 3"],
    "PredictResponse": [".tensorflow.serving.ModelSpec model_spec = 2",
                        "map<string, .tensorflow.TensorProto> outputs = 1"],
    "GetModelMetadataRequest": [".tensorflow.serving.ModelSpec model_spec = 1", "repeated string metadata_field = 2"],
    "GetModelMetadataResponse": [".tensorflow.serving.ModelSpec model_spec = 1",
                                 "map<string, .google.protobuf.Any> metadata = 2"],
    "SignatureDefMap": ["map<string, .tensorflow.SignatureDef> signature_def = 1"],
    "GetModelStatusRequest": [".tensorflow.serving.ModelSpec model_spec = 1"],
    "GetModelStatusResponse": ["repeated .tensorflow.serving.ModelVersionStatus model_version_status = 1"],
    "ModelVersionStatus": ["int64 version = 1", "ModelVersionStatus.State state = 2"],
})

V2 = ProtoFile("envcheck/grpc_predict_v2_subset.proto", "inference", [], {}, {
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": ["string name = 1", "string version = 2", "repeated string extensions = 3"],
    "ModelReadyRequest": ["string name = 1", "string version = 2"],
    "ModelReadyResponse": ["bool ready = 1"],
    "ModelMetadataRequest": ["string name = 1", "string version = 2"],
    "ModelMetadataResponse": ["string name = 1", "repeated string versions = 2", "string platform = 3",
                              "repeated .inference.ModelMetadataResponse.TensorMetadata inputs = 4",
                              "repeated .inference.ModelMetadataResponse.TensorMetadata outputs = 5"],
    "ModelMetadataResponse.TensorMetadata": ["string name = 1", "string datatype = 2", "repeated int64 shape = 3"],
    "InferTensorContents": ["repeated bool bool_contents = 1", "repeated int32 int_contents = 2",
                            "repeated int64 int64_contents = 3", "repeated uint32 uint_contents = 4",
                            "repeated uint64 uint64_contents = 5", "repeated float fp32_contents = 6",
                            "repeated double fp64_contents = 7", "repeated bytes bytes_contents = 8"],
    "ModelInferRequest": ["string model_name = 1", "string model_version = 2", "string id = 3",
                          "repeated .inference.ModelInferRequest.InferInputTensor inputs = 5",
                          "repeated bytes raw_input_contents = 7"],
    "ModelInferRequest.InferInputTensor": ["string name = 1", "string datatype = 2", "repeated int64 shape = 3",
                                           "InferTensorContents contents = 5"],
    "ModelInferResponse": ["string model_name = 1", "string model_version = 2", "string id = 3",
                           "repeated .inference.ModelInferResponse.InferOutputTensor outputs = 5",
                           "repeated bytes raw_output_contents = 6"],
    "ModelInferResponse.InferOutputTensor": ["string name = 1", "string datatype = 2", "repeated int64 shape = 3",
                                             "InferTensorContents contents = 5"],
})

FILES = (TENSORFLOW, TFSERVING, V2)


def _file(declared: ProtoFile) -> descriptor_pb2.FileDescriptorProto:
    """One .proto file's descriptor from its declarations."""
    name, package, dependencies, enums, messages = declared
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3", dependency=dependencies)
    built: dict[str, Any] = {}
    for message_name, fields in messages.items():
        outer, _, inner = message_name.rpartition(".")
        message = (built[outer].nested_type if outer else proto.message_type).add(name=inner)
        built[message_name] = message
        for declaration in fields:
            _add_field(message, f".{package}.{message_name}", declaration, package, enums)
    for enum_name, values in enums.items():
        outer, _, inner = enum_name.rpartition(".")
        enum = (built[outer].enum_type if outer else proto.enum_type).add(name=inner)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    return proto


def _add_field(message: descriptor_pb2.DescriptorProto, full_name: str, declaration: str, package: str,
               enums: dict[str, dict[str, int]]) -> None:
    """`message`'s (`full_name`'s) field as the .proto declares it; a map adds its `XxxEntry` message, as
    protoc does."""
    parsed = _FIELD.match(declaration)
    if parsed is None:
        raise ValueError(f"not a field declaration: {declaration!r}")  # a typo in this module's tables
    name, number = parsed["name"], int(parsed["number"])
    field = message.field.add(name=name, number=number, json_name=_camel(name))
    field.label = _FieldType.LABEL_REPEATED if parsed[1] or parsed["value"] else _FieldType.LABEL_OPTIONAL
    if parsed["value"]:
        entry = message.nested_type.add(name="".join(part.capitalize() for part in name.split("_")) + "Entry")
        entry.options.map_entry = True
        entry_name = f"{full_name}.{entry.name}"
        _add_field(entry, entry_name, "string key = 1", package, enums)
        _add_field(entry, entry_name, f"{parsed['value']} value = 2", package, enums)
        field.type, field.type_name = _FieldType.TYPE_MESSAGE, entry_name
        return
    kind = parsed["type"]
    if kind in SCALARS:
        field.type = SCALARS[kind]
    elif kind in enums:
        field.type, field.type_name = _FieldType.TYPE_ENUM, f".{package}.{kind}"
    else:
        field.type = _FieldType.TYPE_MESSAGE
        field.type_name = kind if kind.startswith(".") else f".{package}.{kind}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for well_known in (wrappers_pb2, any_pb2):
        pool.AddSerializedFile(well_known.DESCRIPTOR.serialized_pb)
    for declared in FILES:
        pool.Add(_file(declared))
    return pool


POOL = _build_pool()


@functools.cache
def message_class(full_name: str) -> Any:
    """The message class of `full_name` (`inference.ModelInferRequest`, `tensorflow.serving.PredictRequest`…)."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))
