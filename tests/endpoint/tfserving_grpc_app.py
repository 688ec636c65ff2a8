"""A PROTOCOL FIXTURE for TF Serving's gRPC API, not TF Serving: no TF Serving binary installs here, so this
server implements `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and `ModelService`
(GetModelStatus) on the official stubs of the `tensorflow-serving-api` package, serving SavedModels'
`serving_default` with TensorFlow. It proves envcheck's `tfserving+grpc://` client speaks the official messages
(field numbers, TensorProto, the Any-packed SignatureDefMap), not that TF Serving computes like TensorFlow.

Run by tests/endpoint/test_endpoint_grpc.py with the kserve venv's interpreter (scripts/setup-endpoint-env.sh
installs tensorflow-serving-api there with --no-deps: its TensorFlow is the system's), never imported by tests.
Usage: tfserving_grpc_app.py PORT MODELS_JSON, MODELS_JSON a list of {"name", "dir", "version", optionally
"scale": every weight multiplied by it, "token": calls without `authorization: Bearer <token>` are refused,
"delay": seconds Predict sleeps first (a slow server)}.
Answers are TensorProtos by tf.make_tensor_proto (tensor_content); `"typed": true` writes float_val instead.
Each Predict answer's initial metadata names the replica: `x-replica: <REPLICA>`.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


REPLICA = "fixture-replica-1"


class Model:
    """One SavedModel signature, its name and version."""

    def __init__(self, config: dict):
        self.name = config["name"]
        self.version = int(config.get("version", 1))
        self.token = config.get("token")
        self.typed = bool(config.get("typed"))
        self.delay = float(config.get("delay", 0))
        loaded = tf.saved_model.load(config["dir"])
        if config.get("scale") is not None:
            for variable in loaded.variables:
                if variable.dtype.is_floating:
                    variable.assign(variable * config["scale"])
        self._loaded = loaded
        self.signature = loaded.signatures["serving_default"]

    def signature_def(self):
        """The SignatureDef TF Serving reports for `serving_default`."""
        signature_def = get_model_metadata_pb2.SignatureDefMap().signature_def["serving_default"]
        signature_def.method_name = "tensorflow/serving/predict"
        for name, spec in self.signature.structured_input_signature[1].items():
            _tensor_info(signature_def.inputs[name], spec)
        for name, spec in self.signature.structured_outputs.items():
            _tensor_info(signature_def.outputs[name], spec)
        return signature_def

    def predict(self, inputs: dict) -> dict:
        return {name: tensor.numpy() for name, tensor in self.signature(**inputs).items()}


def _tensor_info(info, spec) -> None:
    info.name = f"{spec.name or 'tensor'}:0"
    info.dtype = spec.dtype.as_datatype_enum
    info.tensor_shape.CopyFrom(spec.shape.as_proto())


class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """Predict, GetModelMetadata and GetModelStatus over the models by name."""

    def __init__(self, models: dict[str, Model]):
        self.models = models

    def _model(self, model_spec, context) -> Model:
        model = self.models.get(model_spec.name)
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model_spec.name})")
        if model_spec.HasField("version") and model_spec.version.value != model.version:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"Servable not found for request: Specific({model.name}, {model_spec.version.value})")
        if model.token and dict(context.invocation_metadata()).get("authorization") != f"Bearer {model.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        return model

    def Predict(self, request, context):
        model = self._model(request.model_spec, context)
        context.send_initial_metadata((("x-replica", REPLICA),))
        time.sleep(model.delay)
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = "serving_default"
        for name, array in model.predict(inputs).items():
            if model.typed:
                tensor = response.outputs[name]
                tensor.dtype = tf.as_dtype(array.dtype).as_datatype_enum
                tensor.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
                tensor.float_val.extend(array.ravel().tolist())
            else:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response

    def GetModelMetadata(self, request, context):
        model = self._model(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def["serving_default"].CopyFrom(model.signature_def())
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    def GetModelStatus(self, request, context):
        model = self._model(request.model_spec, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=model.version,
                                          state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response


def main() -> None:
    port, configs = int(sys.argv[1]), json.loads(sys.argv[2])
    servicer = Servicer({config["name"]: Model(config) for config in configs})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"serving on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
