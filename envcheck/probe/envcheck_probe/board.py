"""The board an edge box is (the fingerprint's `board`): the device tree's model (a Raspberry Pi, a Jetson) and
NVIDIA's L4T release from /etc/nv_tegra_release, mapped to its JetPack version where NVIDIA's public table
lists it. Read as plain files, without any package (no jetson-stats, no vcgencmd).

`board` is written only when something is found, so a PC's fingerprint has none. In a container the device
tree is usually masked (Docker hides /sys/firmware) while /etc/nv_tegra_release comes with L4T-based images.
Standard library only, Python >= 3.8 syntax; nothing here raises.
"""
import os
import re

from .files import read_text

DEVICE_TREE_MODELS = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
NV_TEGRA_RELEASE = "etc/nv_tegra_release"

# L4T (Jetson Linux) release -> JetPack, from NVIDIA's JetPack archive
# (https://developer.nvidia.com/embedded/jetpack-archive). A release not listed has no "jetpack" key.
JETPACK_BY_L4T = {
    "R32.4.3": "4.4", "R32.4.4": "4.4.1", "R32.5.0": "4.5", "R32.5.1": "4.5.1", "R32.6.1": "4.6",
    "R32.7.1": "4.6.1", "R32.7.2": "4.6.2", "R32.7.3": "4.6.3", "R32.7.4": "4.6.4", "R32.7.5": "4.6.5",
    "R35.1.0": "5.0.2", "R35.2.1": "5.1", "R35.3.1": "5.1.1", "R35.4.1": "5.1.2", "R35.5.0": "5.1.3",
    "R35.6.0": "5.1.4", "R36.3.0": "6.0", "R36.4.0": "6.1", "R36.4.3": "6.2", "R36.4.4": "6.2.1",
}

# "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: ..."
_RELEASE = re.compile(r"R(\d+)\s*\(release\)")
_REVISION = re.compile(r"REVISION:\s*([0-9.]+)")
_BOARD = re.compile(r"BOARD:\s*([^,\s]+)")


def board_fingerprint(root="/"):
    """{"board": {...}} when this machine says what board it is, {} otherwise."""
    board = {}
    model = device_tree_model(root)
    if model:
        board["model"] = model
    jetson = jetson_release(root)
    if jetson:
        board["jetson"] = jetson
    return {"board": board} if board else {}


def device_tree_model(root="/"):
    """The device tree's model string ("Raspberry Pi 4 Model B Rev 1.4"), its trailing NUL stripped."""
    for path in DEVICE_TREE_MODELS:
        text = _read(os.path.join(root, path))
        model = (text or "").replace("\x00", "").strip()
        if model:
            return model
    return None


def jetson_release(root="/"):
    """{"l4t", "board", "release", "jetpack"} from /etc/nv_tegra_release, the keys it lets us know; None when
    there is no such file."""
    text = _read(os.path.join(root, NV_TEGRA_RELEASE))
    lines = (text or "").strip().splitlines()
    if not lines:
        return None
    first_line = lines[0].strip()
    jetson = {}
    release, revision = _RELEASE.search(first_line), _REVISION.search(first_line)
    if release and revision:
        jetson["l4t"] = "R%s.%s" % (release.group(1), revision.group(1))
        if jetson["l4t"] in JETPACK_BY_L4T:
            jetson["jetpack"] = JETPACK_BY_L4T[jetson["l4t"]]
    board = _BOARD.search(first_line)
    if board:
        jetson["board"] = board.group(1)
    jetson["release"] = first_line
    return jetson


def _read(path):
    """read_text, with text that does not decode counted as absent (a board file is ASCII or nothing)."""
    try:
        return read_text(path)
    except ValueError:
        return None
