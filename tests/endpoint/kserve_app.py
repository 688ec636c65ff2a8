"""A KServe ModelServer serving a SavedModel's `serving_default` signature with TensorFlow: run by
tests/endpoint/servers.py with the kserve venv's interpreter (scripts/setup-endpoint-env.sh), never imported
by the tests themselves.

It speaks what KServe speaks over REST: the Open Inference Protocol (v2) and KServe's v1, which is TF
Serving's predict format (`instances` rows or `inputs` columns in, `predictions`/`outputs` back). The model
reports its signature (v2 metadata) and its version (each v2 answer's `model_version`).

Configured by the environment (KServe parses the command line itself: --http_port and the rest):
ENVCHECK_SERVE_MODELS, a JSON list of models, each {"name", "dir": the SavedModel, "version", and optionally
"rename": {served name: the signature's input name} (a model whose signature differs from the golden's),
"scale": every weight multiplied by it (the same architecture with other weights), "digits": TF Serving (v1) answers written
with that many significant digits (a lossy JSON transport), "token": a request for this model without
`Authorization: Bearer <token>` gets 401}.
"""
from __future__ import annotations

import json
import os
import uuid

import kserve
import kserve.errors
import kserve.model_server
import numpy as np
from fastapi.responses import JSONResponse
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
                "bool": "BOOL"}


class SavedModelServer(kserve.Model):
    """One SavedModel signature behind KServe's protocols."""

    def __init__(self, config: dict):
        super().__init__(config["name"])
        self.model_dir = config["dir"]
        self.version = str(config.get("version", "1"))
        self.renamed = config.get("rename") or {}  # served name -> the signature's own
        self.scale = config.get("scale")
        self.digits = config.get("digits")
        self.load()

    def load(self) -> bool:
        import tensorflow as tf

        self._loaded = tf.saved_model.load(self.model_dir)
        self.signature = self._loaded.signatures["serving_default"]
        if self.scale is not None:
            for variable in self._loaded.variables:
                if variable.dtype.is_floating:
                    variable.assign(variable * self.scale)
        self.ready = True
        return self.ready

    def written(self, array: np.ndarray) -> list:
        """The values as a TF Serving answer carries them: exact, or with `digits` significant digits. (KServe
        writes v2 answers itself, always exactly: it casts `data` to the declared datatype.)"""
        if self.digits is None:
            return array.tolist()
        rounded = [float(f"{value:.{self.digits}g}") for value in array.astype(np.float64).ravel()]
        return np.array(rounded, dtype=np.float64).reshape(array.shape).tolist()

    @property
    def input_specs(self) -> dict:
        """The signature's inputs under the names this server gives them."""
        served = {own: served for served, own in self.renamed.items()}
        return {served.get(name, name): spec for name, spec in self.signature.structured_input_signature[1].items()}

    def _tensors(self, specs) -> list[dict]:
        return [{"name": name, "datatype": V2_DATATYPES[spec.dtype.name],
                 "shape": [-1 if size is None else int(size) for size in spec.shape]}
                for name, spec in sorted(specs.items())]

    def get_input_types(self) -> list[dict]:
        return self._tensors(self.input_specs)

    def get_output_types(self) -> list[dict]:
        return self._tensors(self.signature.structured_outputs)

    def run(self, inputs: dict) -> dict[str, np.ndarray]:
        specs = self.input_specs
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise kserve.errors.InvalidInput(f"unknown input(s) {unknown}; the signature takes {sorted(specs)}")
        fed = {self.renamed.get(name, name): np.asarray(value, dtype=specs[name].dtype.as_numpy_dtype)
               for name, value in inputs.items()}
        return {name: tensor.numpy() for name, tensor in self.signature(**fed).items()}

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            outputs = self.run({tensor.name: tensor.as_numpy() for tensor in payload.inputs})
            answer = []
            for name, array in sorted(outputs.items()):
                tensor = InferOutput(name=name, shape=list(array.shape), datatype=V2_DATATYPES[array.dtype.name])
                tensor.set_data_from_numpy(array, binary_data=False)
                answer.append(tensor)
            return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name,
                                 model_version=self.version, infer_outputs=answer)
        return self._tfserving(payload)

    def _tfserving(self, payload: dict) -> dict:
        """TF Serving's REST predict: rows (`instances`) -> `predictions`, columns (`inputs`) -> `outputs`; a
        lone output is unnamed, as TF Serving writes it."""
        lone_input = next(iter(self.input_specs))
        if "instances" in payload:
            rows = payload["instances"]
            names = list(rows[0]) if rows and isinstance(rows[0], dict) else None
            outputs = self.run({name: [row[name] for row in rows] for name in names} if names else {lone_input: rows})
            if len(outputs) == 1:
                return {"predictions": self.written(next(iter(outputs.values())))}
            count = len(next(iter(outputs.values())))
            return {"predictions": [{name: self.written(array[i]) for name, array in outputs.items()}
                                    for i in range(count)]}
        columns = payload["inputs"]
        outputs = self.run(columns if isinstance(columns, dict) else {lone_input: columns})
        if len(outputs) == 1:
            return {"outputs": self.written(next(iter(outputs.values())))}
        return {"outputs": {name: self.written(array) for name, array in outputs.items()}}


def require_tokens(app, tokens: dict[str, str]) -> None:
    """401 for a request naming a model with a token but not sending it (KServe leaves auth to its ingress)."""

    @app.middleware("http")
    async def check(request, call_next):
        for model, token in tokens.items():
            named = f"/models/{model}" in request.url.path
            if named and request.headers.get("authorization") != f"Bearer {token}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
        return await call_next(request)


def main() -> None:
    configs = json.loads(os.environ["ENVCHECK_SERVE_MODELS"])
    tokens = {config["name"]: config["token"] for config in configs if config.get("token")}
    if tokens:
        require_tokens(kserve.model_server.app, tokens)
    kserve.ModelServer().start([SavedModelServer(config) for config in configs])


if __name__ == "__main__":
    main()
