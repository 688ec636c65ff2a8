"""A tiny v2 endpoint on the standard library's http.server, for what a real server cannot be made to do on
purpose: `slow SECONDS` answers metadata at once and each inference only after SECONDS; `dies` answers
metadata, then exits without a word at the first inference (a server that stops mid-run); `limit ROWS`
answers 413 to a request of more than ROWS rows (a body or batch limit) and zeros to the others.

Usage: python stdlib_server.py PORT slow SECONDS | dies | limit ROWS. It declares the edge golden's signature.
With ENVCHECK_STDLIB_TLS=CA:CERT:KEY (PEM files) it speaks https and requires a client certificate the CA signed.
"""
from __future__ import annotations

import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

METADATA = {"name": "m", "versions": ["1"], "platform": "stdlib",
            "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 16, 16, 3]}],
            "outputs": [{"name": "class_probs", "datatype": "FP32", "shape": [-1, 10]},
                        {"name": "embedding", "datatype": "FP32", "shape": [-1, 8]}]}


class Handler(BaseHTTPRequestHandler):
    """The endpoint; `mode` is the command line's behaviour words."""

    protocol_version = "HTTP/1.1"
    mode: ClassVar[list[str]] = []

    def do_GET(self):
        documents = {"/v2": {"name": "stdlib", "version": "0"}, "/v2/models/m": METADATA,
                     "/v2/models/m/ready": {"ready": True}}
        self._answer(documents.get(self.path))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length))
        if self.mode[0] == "dies":
            os._exit(1)  # no answer, no goodbye: the connection is reset
        rows = request["inputs"][0]["shape"][0]
        if self.mode[0] == "limit" and rows > int(self.mode[1]):
            self._answer({"error": f"batch of {rows} exceeds {self.mode[1]}"}, status=413)
            return
        if self.mode[0] == "slow":
            time.sleep(float(self.mode[1]))
        self._answer({"model_name": "m", "outputs": [
            {"name": tensor["name"], "datatype": "FP32", "shape": [rows, tensor["shape"][1]],
             "data": [0.0] * (rows * tensor["shape"][1])} for tensor in METADATA["outputs"]]})

    def _answer(self, document, status=200):
        body = json.dumps(document if document is not None else {"error": "not found"}).encode()
        self.send_response(status if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def serve(port: int) -> None:
    """Serve until killed: http, or mutual TLS when ENVCHECK_STDLIB_TLS names the files."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    tls = os.environ.get("ENVCHECK_STDLIB_TLS")
    if tls:
        ca, cert, key = tls.split(":")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    Handler.mode = sys.argv[2:]
    serve(int(sys.argv[1]))
