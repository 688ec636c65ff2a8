"""The recorded GPU outputs under fixtures/gpu/ and a fake libnvidia-ml.so.1 built from an NVML record: plain
helpers that probe tests import (`from .gpu_fixtures import …`); the fixtures that build them stay in conftest.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import REPO

GPU_FIXTURES = REPO / "fixtures" / "gpu"
FAKE_NVML_SOURCE = Path(__file__).with_name("fake_nvml.c")


def _c_string(value) -> str:
    return "NULL" if value is None else json.dumps(value)


QUERIES = ("name", "uuid", "serial", "compute_capability", "memory", "pci", "persistence", "ecc", "mig", "power",
           "clocks")  # fake_nvml.c's enum query, in order


def answers_header(record: dict) -> str:
    """C definitions of a recorded NVML answer (fixtures/gpu/nvml/*.json) for fake_nvml.c."""
    gpus = record.get("gpus", [])
    rows = []
    for g in gpus:
        cc = g["compute_capability"] or [-1, -1]
        ecc, mig = g["ecc"] or [-1, -1], g["mig"] or [-1, -1]
        number = lambda v: -1 if v is None else v  # noqa: E731
        unknown = set(g.get("query_errors", {})) - set(QUERIES)
        assert not unknown, f"unknown query in query_errors: {unknown}"
        errors = [str(g.get("query_errors", {}).get(query, 0)) for query in QUERIES]
        rows.append("{" + ", ".join([
            _c_string(g["name"]), _c_string(g["uuid"]), _c_string(g["serial"]), _c_string(g["pci_bus_id"]),
            str(cc[0]), str(cc[1]), f"{number(g['memory_total_mib'])}LL", str(number(g["persistence"])),
            str(ecc[0]), str(ecc[1]), str(mig[0]), str(mig[1]), f"{number(g['power_limit_mw'])}LL",
            str(number(g["max_clock_sm_mhz"])), str(number(g["max_clock_mem_mhz"])),
            str(g.get("handle_result", 0)), "{" + ", ".join(errors) + "}"]) + "}")
    cuda = record.get("cuda_driver_version")
    return "\n".join([
        f"#define INIT_RESULT {record['init_result']}",
        f"#define DRIVER_VERSION {_c_string(record.get('driver_version'))}",
        f"#define CUDA_DRIVER_VERSION {-1 if cuda is None else cuda}",
        f"#define GPU_COUNT {len(gpus)}",
        "static const struct gpu_answer GPUS[] = {" + (", ".join(rows) or "{0}") + "};", ""])


def build_fake_nvml(record: dict, directory: Path) -> Path:
    """Compile fake_nvml.c for one record, exporting the entry points of its `nvml_api` generation."""
    (directory / "answers.h").write_text(answers_header(record))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", f"-DNVML_FAKE_API={record['nvml_api']}",
                    f"-I{directory}", f"-I{FAKE_NVML_SOURCE.parent}", "-o", str(directory / "libnvidia-ml.so.1"),
                    str(FAKE_NVML_SOURCE)], check=True)
    return directory


def load_record(name: str) -> dict:
    return json.loads((GPU_FIXTURES / "nvml" / f"{name}.json").read_text())
