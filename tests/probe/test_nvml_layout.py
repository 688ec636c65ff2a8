"""The probe's ctypes structs against the C compiler's sizeof/offsetof of the declarations written from
nvml.h (tests/probe/nvml_decls.h): a field out of place would make NVML write past or beside them."""
from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import require

DECLARATIONS = Path(__file__).with_name("nvml_decls.h")
# C struct -> the probe's ctypes struct (nvml_structs()), field by field, in order.
LAYOUTS = {
    "nvmlMemory_t": ("nvmlMemory_t", [("total", "total"), ("free", "free"), ("used", "used")]),
    "nvmlPciInfo_t": ("nvmlPciInfo_t", [
        ("busIdLegacy", "bus_id_legacy"), ("domain", "domain"), ("bus", "bus"), ("device", "device"),
        ("pciDeviceId", "pci_device_id"), ("pciSubSystemId", "pci_subsystem_id"), ("busId", "bus_id")]),
    "nvmlPciInfo_legacy_t": ("nvmlPciInfo_legacy_t", [
        ("busId", "bus_id"), ("domain", "domain"), ("bus", "bus"), ("device", "device"),
        ("pciDeviceId", "pci_device_id"), ("pciSubSystemId", "pci_subsystem_id"), ("reserved0", "reserved")]),
}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict:
    """{struct: {"size": sizeof, field: offsetof}} and sizeof(nvmlDevice_t), as gcc lays them out."""
    require(shutil.which("gcc") is not None, "gcc (to compile the nvml.h declarations)")
    lines = []
    for struct, (_, fields) in LAYOUTS.items():
        parts = ['\\"size\\": %zu'] + [f'\\"{c}\\": %zu' for c, _ in fields]
        values = [f"sizeof({struct})"] + [f"offsetof({struct}, {c})" for c, _ in fields]
        lines.append(f'    printf("\\"{struct}\\": {{{", ".join(parts)}}}, ", {", ".join(values)});')
    source = "\n".join([
        "#include <stddef.h>", "#include <stdio.h>", f'#include "{DECLARATIONS}"', "int main(void) {",
        '    printf("{");', *lines, '    printf("\\"nvmlDevice_t\\": %zu}", sizeof(nvmlDevice_t));',
        "    return 0;", "}", ""])
    directory = tmp_path_factory.mktemp("nvml-layout")
    (directory / "layout.c").write_text(source)
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(directory / "layout"), str(directory / "layout.c")], check=True)
    return json.loads(subprocess.run([str(directory / "layout")], check=True, capture_output=True, text=True).stdout)


@pytest.mark.parametrize("struct", sorted(LAYOUTS))
def test_ctypes_struct_matches_nvml_h(probe, c_layout, struct):
    name, fields = LAYOUTS[struct]
    python = probe.nvml_api.nvml_structs()[name]
    assert ctypes.sizeof(python) == c_layout[struct]["size"]
    for c_field, python_field in fields:
        assert getattr(python, python_field).offset == c_layout[struct][c_field], (struct, c_field)


def test_known_sizes_and_the_handle(probe, c_layout):
    """The sizes nvml.h implies (68-byte PCI info since API 9, 52 before, 24-byte memory) and a
    pointer-sized nvmlDevice_t, which the probe passes as c_void_p."""
    assert (c_layout["nvmlPciInfo_t"]["size"], c_layout["nvmlPciInfo_legacy_t"]["size"],
            c_layout["nvmlMemory_t"]["size"]) == (68, 52, 24)
    assert c_layout["nvmlDevice_t"] == ctypes.sizeof(ctypes.c_void_p)
    answer = probe.nvml_api.nvml_structs()["PciAnswer"]
    assert ctypes.sizeof(answer) == 68  # large enough for whichever struct nvmlDeviceGetPciInfo_v2 fills
