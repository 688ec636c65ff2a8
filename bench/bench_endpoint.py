"""Benchmarks of the endpoint check and the load generator against a bare client in the same run, as ratios.

    python bench/bench_endpoint.py --target v2+http://127.0.0.1:PORT/m [--golden golden/edge]
    python bench/bench_endpoint.py --start-server          # a KServe server of the golden's model (tests' venv)

- target: the endpoint target's run (envcheck/targets/endpoint.py: metadata, the golden set in its batches,
  decoding, the transport's measure) vs a bare http.client loop sending the same requests (the same metadata
  GETs, the golden set in one v2 POST) and decoding the answer into numpy, in this process: envcheck's own
  overhead per check, interpreter start-up left out.
- check: `envcheck check --target ENDPOINT` vs a bare script doing the same in a fresh interpreter: what a CI
  job pays for the gate (start-up, golden verification, comparison, reports) over the requests themselves.
- load: envcheck's load generator (envcheck/targets/load.py: N closed-loop clients, each its own connection)
  vs N bare threads looping http.client POSTs of a pre-encoded body, for the same duration, one sample per
  request: the achieved rates' ratio (1.0: the generator costs the client nothing; below 1: it does).

Runs alternate between the measured side and its floor, and the median of each is compared, so background
noise hits both alike. Absolute numbers are printed only as context.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "endpoint")]

from envcheck.targets.endpoint import EndpointTarget  # noqa: E402
from envcheck.targets.endpoint_client import Auth, open_client, parse_endpoint_spec  # noqa: E402
from envcheck.targets.load import run_load  # noqa: E402

DEFAULT_GOLDEN = REPO / "golden" / "edge"
BARE_CHECK = """
import http.client, json, sys
import numpy as np


def bare_check(host, port, model, inputs_path):
    \"\"\"The requests an endpoint check sends (model metadata, server metadata, the golden set in one v2
    POST), with http.client, the answer decoded into float32 arrays.\"\"\"
    with np.load(inputs_path) as inputs:
        arrays = {name: inputs[name] for name in inputs.files}
    body = json.dumps({"inputs": [{"name": name, "shape": list(array.shape), "datatype": "FP32",
                                   "data": array.reshape(-1).tolist()} for name, array in arrays.items()]}).encode()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    for path in (f"/v2/models/{model}", "/v2"):
        connection.request("GET", path)
        json.loads(connection.getresponse().read())
    connection.request("POST", f"/v2/models/{model}/infer", body=body, headers={"Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return {o["name"]: np.asarray(o["data"], dtype=np.float64).astype(np.float32).reshape(o["shape"])
            for o in answer["outputs"]}


if __name__ == "__main__":
    print(sorted(bare_check(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])))
"""


# This checkout's envcheck, whatever another checkout installed in editable mode.
ENVIRONMENT = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}


def timed(command: list[str], ok_codes: tuple[int, ...] = (0, 1)) -> float:
    """Wall seconds of one run."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, cwd=REPO, check=False, env=ENVIRONMENT)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.decode()[-800:]}")
    return elapsed


def bench_target(target: str, golden: Path, rounds: int, work: Path) -> None:
    """The endpoint target's run against the bare requests, both in this process, alternating, ratio of medians."""
    spec = parse_endpoint_spec(target)
    namespace = runpy.run_path(str(_bare_script(work)))  # the same script `check` runs in a fresh interpreter
    endpoint = EndpointTarget.from_spec(target)

    def ours() -> None:
        outcome = endpoint.run(golden, work / "capture", 60)
        if not getattr(outcome, "outputs", None):
            raise SystemExit(f"the endpoint target did not capture outputs: {outcome}")

    def bare() -> None:
        namespace["bare_check"](spec.host, spec.port, spec.model, golden / "inputs.npz")

    ours(), bare()  # warm both
    mine, floor = [], []
    for _ in range(rounds):
        for run, into in ((ours, mine), (bare, floor)):
            started = time.perf_counter()
            run()
            into.append(time.perf_counter() - started)
    ratio = statistics.median(mine) / statistics.median(floor)
    print(f"target ratio {ratio:5.2f}  (median {statistics.median(mine) * 1e3:.1f} ms vs bare requests "
          f"{statistics.median(floor) * 1e3:.1f} ms, {rounds} runs each, in this process)", flush=True)


def bench_check(target: str, golden: Path, rounds: int, work: Path) -> None:
    """`envcheck check` of the endpoint against the bare script in a fresh interpreter, ratio of medians."""
    spec = parse_endpoint_spec(target)
    script = _bare_script(work)
    ours_command = [sys.executable, "-m", "envcheck", "check", "--golden", str(golden), "--target", target,
                    "--reports-dir", str(work / "reports"), "--json", str(work / "report.json")]
    bare_command = [sys.executable, str(script), spec.host, str(spec.port), spec.model, str(golden / "inputs.npz")]
    timed(ours_command), timed(bare_command, (0,))  # warm the page cache (and stop at once if either fails)
    ours, bare = [], []
    for _ in range(rounds):
        ours.append(timed(ours_command))
        bare.append(timed(bare_command, (0,)))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"check  ratio {ratio:5.2f}  (median {statistics.median(ours):.2f} s vs bare script "
          f"{statistics.median(bare):.2f} s, {rounds} runs each, fresh interpreters)", flush=True)


def _bare_script(work: Path) -> Path:
    script = work / "bare_check.py"
    script.write_text(BARE_CHECK)
    return script


def bare_load(host: str, port: int, path: str, body: bytes, concurrency: int, duration_s: float) -> float:
    """Answered requests per second of `concurrency` bare threads, each its own kept-alive connection."""
    deadline = time.monotonic() + duration_s
    counts = [0] * concurrency

    def loop(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while time.monotonic() < deadline:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            json.loads(response.read())
            if response.status == 200:
                counts[index] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def bench_load(target: str, golden: Path, rounds: int, concurrency: int, duration_s: float) -> None:
    """run_load's achieved rate against the bare threads' at the same concurrency, alternating."""
    spec = parse_endpoint_spec(target)
    inputs = {name: array[:1] for name, array in np.load(golden / "inputs.npz").items()}
    body = json.dumps({"inputs": [{"name": name, "shape": list(array.shape), "datatype": "FP32",
                                   "data": array.reshape(-1).tolist()} for name, array in inputs.items()]}).encode()
    path = f"/v2/models/{spec.model}/infer"
    ours, bare = [], []
    for _ in range(rounds):
        result = run_load(spec, Auth(), inputs, concurrency=concurrency, duration_s=duration_s, timeout=60,
                          connect=open_client)
        if result.errors:
            raise SystemExit(f"the load run had errors: {result.errors}")
        ours.append(result.rate_per_s)
        bare.append(bare_load(spec.host, spec.port, path, body, concurrency, duration_s))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"load   ratio {ratio:5.2f}  (median {statistics.median(ours):.1f}/s vs bare threads "
          f"{statistics.median(bare):.1f}/s at concurrency {concurrency}, {duration_s:g} s × {rounds} rounds each)",
          flush=True)


@contextlib.contextmanager
def started_server(golden: Path, work: Path) -> Iterator[str]:
    """A KServe server of the golden's model from the tests' launcher (tests/endpoint/servers.py, the kserve
    venv of scripts/setup-endpoint-env.sh); yields its spec."""
    from servers import running, start_kserve

    with running(start_kserve([{"name": "m", "dir": str(golden / "model"), "version": "1"}], work)) as server:
        yield server.spec("v2", "m")


def main() -> int:
    """Both comparisons, printed as they are measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="a v2+http:// endpoint serving the golden's model")
    parser.add_argument("--start-server", action="store_true", help="start a KServe server of the golden's model")
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--skip-check", action="store_true", help="only the load generator")
    args = parser.parse_args()
    if bool(args.target) == args.start_server:
        parser.error("name one of --target or --start-server")
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-endpoint-") as folder:
        work = Path(folder)
        with (started_server(args.golden, work) if args.start_server else contextlib.nullcontext(args.target)) as target:
            print(f"endpoint {target}, golden {args.golden}", flush=True)
            if not args.skip_check:
                bench_target(target, args.golden, args.rounds, work)
                bench_check(target, args.golden, args.rounds, work)
            bench_load(target, args.golden, args.rounds, args.concurrency, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
