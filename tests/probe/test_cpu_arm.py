"""The probe on arm64: CPU identity from recorded /proc/cpuinfo files of real boards (fixtures/cpuinfo/,
sources in its SOURCES.md), the kernel's hwcap bits, qemu emulation, and the board's own facts (Raspberry Pi,
Jetson). No TensorFlow, no Docker, no arm64 machine: platform.machine(), /proc/cpuinfo and the hwcaps are
passed in, the board files live in a fake tree."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

CPUINFO = Path(__file__).resolve().parents[2] / "fixtures" / "cpuinfo"
NO_HWCAPS = ()  # what cpu_info is told when getauxval cannot be asked

# What qemu-user 7.2 (Debian's qemu-user-static with binfmt) reports for its default `-cpu max` on this kind of
# host: getauxval(AT_HWCAP), getauxval(AT_HWCAP2).
QEMU_7_2_HWCAP, QEMU_7_2_HWCAP2 = 0xecfffffb, 0x7f877fff

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni

"""


def _qemu_8_cpuinfo(implementer: str, part: str) -> str:
    """The /proc/cpuinfo qemu-user 8.1+ writes for an aarch64 guest (linux-user/aarch64/target_proc.h,
    open_cpuinfo): a fixed model name and BogoMIPS, the emulated CPU's hwcaps and MIDR."""
    return "".join(
        f"processor\t: {i}\nmodel name\t: ARMv8 Processor rev 0 (v8l)\nBogoMIPS\t: 100.00\n"
        f"Features\t: fp asimd aes pmull sha1 sha2 crc32 cpuid\nCPU implementer\t: {implementer}\n"
        f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n\n" for i in range(2))


def _recorded(name: str) -> str:
    # newline="": the text exactly as recorded (one web-pasted file carries "\r\r\n"); the parser copes.
    with open(CPUINFO / f"{name}.txt", newline="") as handle:
        return handle.read()


def _arm64(probe, name: str, hwcaps=NO_HWCAPS) -> dict:
    return probe.cpu.cpu_info(machine="aarch64", cpuinfo_text=_recorded(name), hwcaps=hwcaps)


def test_every_recorded_cpuinfo_has_its_source_cited():
    sources = (CPUINFO / "SOURCES.md").read_text()
    recorded = sorted(path.name for path in CPUINFO.glob("*.txt"))
    assert len(recorded) >= 4
    for name in recorded:
        assert f"`{name}`" in sources, f"{name} has no source in fixtures/cpuinfo/SOURCES.md"


@pytest.mark.parametrize("name, model, arm", [
    pytest.param("raspberry-pi-4", "ARM Cortex-A72",
                 {"implementer": "0x41", "vendor": "ARM", "part": "0xd08", "core": "Cortex-A72", "variant": "0x0",
                  "revision": "3"}, id="raspberry-pi-4"),
    pytest.param("raspberry-pi-5", "ARM Cortex-A76",
                 {"implementer": "0x41", "vendor": "ARM", "part": "0xd0b", "core": "Cortex-A76", "variant": "0x4",
                  "revision": "1"}, id="raspberry-pi-5"),
    pytest.param("jetson-agx-xavier", "NVIDIA Carmel",
                 {"implementer": "0x4e", "vendor": "NVIDIA", "part": "0x004", "core": "Carmel", "variant": "0x0",
                  "revision": "0"}, id="jetson-agx-xavier"),
    pytest.param("aws-graviton-3", "ARM Neoverse-V1",
                 {"implementer": "0x41", "vendor": "ARM", "part": "0xd40", "core": "Neoverse-V1", "variant": "0x1",
                  "revision": "1"}, id="aws-graviton-3"),
    pytest.param("rockchip-rk3588", "ARM Cortex-A55 + Cortex-A76",
                 {"implementer": "0x41", "vendor": "ARM", "part": "0xd05", "core": "Cortex-A55", "variant": "0x2",
                  "revision": "0", "cores": ["Cortex-A55", "Cortex-A76"]}, id="rk3588-big-little"),
])
def test_a_real_boards_cpuinfo_names_its_cpu(probe, name, model, arm):
    cpu = _arm64(probe, name)
    assert cpu["machine"] == "aarch64"
    assert cpu["model"] == model
    assert cpu["arm"] == arm
    assert "emulated" not in cpu  # a native board's fingerprint says nothing about emulation
    assert "hwcaps" not in cpu  # getauxval was not available: the key is absent, never an empty guess
    assert "missing_required_flags" not in cpu  # an x86 notion


@pytest.mark.parametrize("name, present, absent", [
    pytest.param("raspberry-pi-4", ["asimd"], ["asimddp", "asimdhp", "i8mm", "sve"], id="pi4-no-dotprod"),
    pytest.param("raspberry-pi-5", ["asimd", "asimdhp", "asimddp", "asimdrdm", "fphp"], ["i8mm", "bf16", "sve"],
                 id="pi5-dotprod"),
    pytest.param("jetson-agx-xavier", ["asimd", "asimdhp", "asimdrdm", "fphp"], ["asimddp", "i8mm"],
                 id="xavier-no-dotprod"),
    pytest.param("aws-graviton-3", ["asimddp", "i8mm", "bf16", "sve", "svei8mm", "svebf16"], ["sve2", "sme"],
                 id="graviton3-sve"),
])
def test_the_features_that_decide_xnnpack_kernels_come_from_the_features_line(probe, name, present, absent):
    cpu = _arm64(probe, name)
    features = next(line for line in _recorded(name).split("\n") if line.startswith("Features"))
    assert cpu["flags"] == sorted(set(features.partition(":")[2].split()))
    assert set(present) <= set(cpu["tf_flags"]) and not set(absent) & set(cpu["tf_flags"])
    order = probe.cpu_arm.ARM_RELEVANT_CPU_FLAGS
    assert cpu["tf_flags"] == [flag for flag in order if flag in cpu["flags"]]


def test_qemu_user_7_shows_the_hosts_x86_cpuinfo_so_features_come_from_the_hwcaps(probe):
    cpu = probe.cpu.cpu_info(machine="aarch64", cpuinfo_text=X86_CPUINFO, hwcaps=(QEMU_7_2_HWCAP, QEMU_7_2_HWCAP2))
    assert cpu["emulated"] == "qemu"
    assert cpu["model"] is None  # the file describes the host, not the CPU this process runs on
    assert "arm" not in cpu and "missing_required_flags" not in cpu
    assert cpu["flags"] == cpu["hwcaps"] == probe.cpu_arm.decode_hwcaps(QEMU_7_2_HWCAP, QEMU_7_2_HWCAP2)
    assert not {"avx", "sse4_2", "fpu"} & set(cpu["flags"])  # never the host's x86 flags
    assert {"asimd", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme"} <= set(cpu["tf_flags"])


def test_hwcap_bits_decode_with_the_kernels_numbers_and_names(probe):
    decode = probe.cpu_arm.decode_hwcaps
    # Bit numbers of arch/arm64/include/uapi/asm/hwcap.h, one per line of the header checked here.
    assert decode(1 << 1, 0) == ["asimd"]
    assert decode(1 << 20, 0) == ["asimddp"]
    assert decode(1 << 22, 0) == ["sve"]
    assert decode(1 << 32, 0) == ["gcs"]
    assert decode(0, 1 << 1) == ["sve2"]
    assert decode(0, 1 << 13) == ["i8mm"]
    assert decode(0, 1 << 14) == ["bf16"]
    assert decode(0, 1 << 23) == ["sme"]
    assert decode(0, 1 << 63) == ["poe"]
    assert decode(0, 0) == []
    assert decode(1 << 50, 0) == ["hwcap_bit_50"]  # a bit a newer kernel may define: named by its number


def test_qemu_7_2_hwcaps_decode_to_its_max_cpu(probe):
    names = probe.cpu_arm.decode_hwcaps(QEMU_7_2_HWCAP, QEMU_7_2_HWCAP2)
    assert names == sorted(names) and len(names) == len(set(names))
    # 0xecfffffb: bits 0-31 less 2 (evtstrm), 24 (dit), 25 (uscat), 28 (ssbs).
    assert {"fp", "asimd", "aes", "sve", "asimdfhm", "ilrcpc", "flagm", "sb", "paca", "pacg"} <= set(names)
    assert not {"evtstrm", "dit", "uscat", "ssbs"} & set(names)
    # 0x7f877fff: bits 0-14, 16-18, 23-30 of AT_HWCAP2.
    assert {"dcpodp", "sve2", "svei8mm", "i8mm", "bf16", "rng", "bti", "mte", "sme", "smefa64"} <= set(names)
    assert not {"dgh", "ecv", "afp", "rpres", "mte3", "wfxt"} & set(names)
    assert len(names) == 28 + 26


@pytest.mark.parametrize("machine, cpuinfo, emulated", [
    pytest.param("aarch64", X86_CPUINFO, "qemu", id="arm64-process-x86-cpuinfo"),
    pytest.param("armv7l", X86_CPUINFO, "qemu", id="arm32-process-x86-cpuinfo"),
    pytest.param("x86_64", _recorded("raspberry-pi-4"), "qemu", id="x86-process-arm-cpuinfo"),
    pytest.param("aarch64", _recorded("raspberry-pi-4"), None, id="arm-on-arm"),
    pytest.param("aarch64", _recorded("jetson-agx-xavier"), None, id="l4t-kernel-model-name-is-native"),
    pytest.param("x86_64", X86_CPUINFO, None, id="x86-on-x86"),
    pytest.param("aarch64", _qemu_8_cpuinfo("0x00", "0x051"), "qemu", id="qemu-8.1-max-cpu"),
    pytest.param("aarch64", _qemu_8_cpuinfo("0x41", "0xd08"), "qemu", id="qemu-8.1-cortex-a72"),
    pytest.param("aarch64", _recorded("qemu-system-max"), "qemu", id="qemu-max-midr-software-implementer"),
    pytest.param("aarch64", "", None, id="no-cpuinfo"),
])
def test_emulation_is_named_from_the_machine_and_cpuinfo_disagreeing(probe, machine, cpuinfo, emulated):
    assert probe.cpu_arm.detect_emulation(machine, cpuinfo) == emulated
    cpu = probe.cpu.cpu_info(machine=machine, cpuinfo_text=cpuinfo, hwcaps=NO_HWCAPS)
    assert cpu.get("emulated") == emulated
    assert ("emulated" in cpu) == (emulated is not None)


def test_x86_fingerprint_is_unchanged_but_for_the_page_size(probe):
    cpu = probe.cpu.cpu_info(machine="x86_64", cpuinfo_text=X86_CPUINFO)
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert cpu["flags"] == sorted(X86_CPUINFO.split("flags\t\t: ")[1].split())
    assert cpu["tf_flags"] == ["avx", "sse4_1", "sse4_2", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                               "avx512_vnni"]
    assert cpu["missing_required_flags"] == []
    assert list(cpu) == ["model", "machine", "logical_cpus", "usable_cpus", "cgroup_cpu_max", "tf_flags", "flags",
                         "missing_required_flags", "page_size"]


def test_page_size_is_the_systems_and_absent_when_it_cannot_be_read(probe, monkeypatch):
    assert probe.cpu.cpu_info(machine="x86_64", cpuinfo_text=X86_CPUINFO)["page_size"] == os.sysconf("SC_PAGE_SIZE")

    def unavailable(name):
        raise ValueError(name)
    monkeypatch.setattr(probe.cpu.os, "sysconf", unavailable)
    assert "page_size" not in probe.cpu.cpu_info(machine="aarch64", cpuinfo_text=_recorded("raspberry-pi-5"),
                                                 hwcaps=NO_HWCAPS)


def test_no_getauxval_leaves_the_hwcaps_out_and_raises_nothing(probe, monkeypatch):
    def no_libc(*args, **kwargs):
        raise OSError("no C library here")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert probe.cpu_arm.read_hwcaps() is None
    cpu = probe.cpu.cpu_info(machine="aarch64", cpuinfo_text=X86_CPUINFO)  # emulated and nothing to ask
    assert "hwcaps" not in cpu and cpu["flags"] == [] and cpu["tf_flags"] == []
    assert cpu["emulated"] == "qemu"


NV_TEGRA_RELEASE = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
                    "DATE: Tue Aug  1 19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_a_raspberry_pi_says_its_model_through_the_device_tree(probe, tmp_path):
    root = _tree(tmp_path, {"proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00"})
    assert probe.board.board_fingerprint(str(root)) == {"board": {"model": "Raspberry Pi 4 Model B Rev 1.4"}}


def test_a_jetson_says_its_l4t_release_and_jetpack(probe, tmp_path):
    root = _tree(tmp_path, {"sys/firmware/devicetree/base/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
                            "etc/nv_tegra_release": NV_TEGRA_RELEASE.encode()})
    assert probe.board.board_fingerprint(str(root)) == {"board": {
        "model": "NVIDIA Jetson AGX Orin Developer Kit",
        "jetson": {"l4t": "R35.4.1", "jetpack": "5.1.2", "board": "t186ref",
                   "release": NV_TEGRA_RELEASE.splitlines()[0]}}}


def test_an_l4t_release_missing_from_nvidias_table_has_no_jetpack(probe, tmp_path):
    release = NV_TEGRA_RELEASE.replace("R35 (release), REVISION: 4.1", "R99 (release), REVISION: 0.1")
    root = _tree(tmp_path, {"etc/nv_tegra_release": release.encode()})
    jetson = probe.board.board_fingerprint(str(root))["board"]["jetson"]
    assert jetson["l4t"] == "R99.0.1" and "jetpack" not in jetson


@pytest.mark.parametrize("files", [
    pytest.param({}, id="a-pc"),
    pytest.param({"proc/device-tree/model": b"\x00", "etc/nv_tegra_release": b"\n"}, id="empty-files"),
    pytest.param({"proc/device-tree/model": b"\xff\xfe\x00"}, id="undecodable-model"),
])
def test_nothing_found_writes_no_board_and_raises_nothing(probe, tmp_path, files):
    assert probe.board.board_fingerprint(str(_tree(tmp_path, files))) == {}
