"""The probe's integrity and start-up records (envcheck_probe/integrity.py, startup.py) on fake installs: a
distribution with a RECORD in a temporary site folder, a fake dpkg database, fake start-up files. No TensorFlow."""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.targets.host import DEFAULT_INTEGRITY, INTEGRITY_MODES
from envcheck.targets.probe_app import probe_app_path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _install(site: Path, name: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> Path:
    """A distribution `name` 1.0 installed into `site` as pip would: its files and a RECORD of their sha256."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {**files, f"{info.name}/METADATA": metadata.encode()}
    rows = []
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
        rows.append(f"{relative},{_record_hash(data)},{len(data)}")
    rows += [f"{info.name}/RECORD,,", f"../../bin/{name}-tool,{_record_hash(b'x')},1"]  # a script pip --target moved
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return info


@pytest.fixture
def site(tmp_path) -> Path:
    """A site folder with numpy (a numerics distribution), tensorflow and its requirement, and `other`."""
    folder = tmp_path / "site"
    _install(folder, "numpy", {"numpy/__init__.py": b"X = 1\n", "numpy/_core/_x.so": b"\x7fELF one",
                               "numpy.libs/libopenblas.so.0": b"\x7fELF blas"})
    _install(folder, "tensorflow", {"tensorflow/__init__.py": b""},
             requires=("helper>=1", 'docs-only; extra == "docs"'))
    _install(folder, "helper", {"helper.py": b"pass\n"})
    _install(folder, "other", {"other/__init__.py": b""})
    return folder


def _python(probe, site, mode="numerics"):
    distributions = probe.integrity.installed([str(site)])
    recorded = probe.integrity.recorded_files(distributions)
    return probe.integrity.python_integrity(distributions, recorded, mode), recorded


def test_an_intact_install_is_clean_and_counted(probe, site):
    record, _ = _python(probe, site)
    assert record["numpy"] == {"version": "1.0", "checked": 4, "modified": [], "missing": [], "unowned": []}
    # numerics: numpy, TensorFlow and what it requires at run time, not the rest
    assert sorted(record) == ["helper", "numpy", "tensorflow"]
    assert "other" in _python(probe, site, "full")[0] and _python(probe, site, "off")[0] == {}


def test_a_changed_file_a_missing_file_and_unowned_code_are_named(probe, site):
    (site / "numpy" / "__init__.py").write_bytes(b"X = 2\n")  # a constant changed by hand
    (site / "numpy.libs" / "libopenblas.so.0").unlink()
    (site / "numpy" / "_core" / "hotfix.so").write_bytes(b"\x7fELF")
    (site / "numpy" / "notes.txt").write_text("not code")  # not code: not named
    record = _python(probe, site)[0]["numpy"]
    assert record["modified"] == ["numpy/__init__.py"]
    assert record["missing"] == ["numpy.libs/libopenblas.so.0"]
    assert record["unowned"] == ["numpy/_core/hotfix.so"]


def test_a_file_left_after_the_deadline_is_counted_unchecked_not_dropped(probe, site):
    distributions = probe.integrity.installed([str(site)])
    recorded = probe.integrity.recorded_files(distributions)
    record = probe.integrity.python_integrity(distributions, recorded, deadline=probe.integrity.Deadline(-1))
    assert record["numpy"]["checked"] == 0 and record["numpy"]["unchecked"] == 4


def test_a_large_file_is_hashed_in_bounded_blocks(probe, tmp_path):
    big = tmp_path / "big.so"
    big.write_bytes(b"\1" * (3 * probe.integrity.BLOCK + 5))
    assert probe.integrity.sha256_hex(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def _dpkg(folder: Path, package: str, files: dict[str, bytes], conffiles: tuple[str, ...] = ()) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{package}:amd64.md5sums").write_text(
        "".join(f"{hashlib.md5(data).hexdigest()}  {path.lstrip('/')}\n" for path, data in files.items()))
    (folder / f"{package}:amd64.list").write_text("".join(f"{path}\n" for path in (*files, *conffiles)))
    return folder


def test_mapped_libraries_are_checked_against_dpkg_and_a_library_no_one_installed_is_named(probe, tmp_path):
    libs = tmp_path / "usr" / "lib"
    libs.mkdir(parents=True)
    (libs / "libgood.so.1").write_bytes(b"good")
    (libs / "libpatched.so.1").write_bytes(b"patched")
    (libs / "libloose.so").write_bytes(b"loose")
    info = _dpkg(tmp_path / "info", "libgood1", {str(libs / "libgood.so.1"): b"good",
                                                 str(libs / "libpatched.so.1"): b"original"})
    index = probe.integrity.dpkg_index(str(info))
    objects = [str(libs / name) for name in ("libgood.so.1", "libpatched.so.1", "libloose.so", "site.so")]
    record = probe.integrity.system_integrity({objects[3]: "numpy"}, index, objects, interpreter=[])
    assert record == {"status": "ok", "checked": 2, "modified": [objects[1]], "unowned": [objects[2]]}
    assert probe.integrity.dpkg_index(str(tmp_path / "absent")) is None
    assert probe.integrity.system_integrity({}, None) == {"status": "no-dpkg"}


def test_the_libraries_of_an_interpreter_built_outside_the_packages_are_left_out(probe, tmp_path):
    """pyenv's or conda's libpython is no hand-copied library: dpkg never installed it, and was never meant to."""
    own = tmp_path / "pyenv" / "lib" / "libpython3.11.so.1.0"
    record = probe.integrity.system_integrity({}, {}, [str(own)], interpreter=[str(tmp_path / "pyenv")])
    assert record["unowned"] == [] and record["checked"] == 0


def test_merged_usr_names_are_one_file(probe):
    assert probe.integrity.dpkg_entry({"/lib/x86_64-linux-gnu/libc.so.6": ("libc6", "0")},
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6") == ("libc6", "0")


def test_mapped_objects_are_read_from_the_maps(probe):
    maps = ("7f0 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libm.so.6\n7f1 r--p 0 08:01 2 /usr/bin/python3.11\n"
            "7f2 rw-p 0 00:00 0 [heap]\n7f3 r-xp 0 08:01 3 /opt/site/numpy/_core/_x.cpython-311.so\n")
    assert [Path(p).name for p in probe.integrity.mapped_objects(maps)] == ["_x.cpython-311.so", "libm.so.6"]


# ------------------------------------------------------------------------------ start-up code

def test_a_pth_with_import_lines_is_recorded_with_its_owner_and_secrets_redacted(probe, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "paths.pth").write_text("/opt/extra\n")  # a path line only: nothing runs
    (folder / "hotfix.pth").write_text("import os; os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\n"
                                       "import os; os.environ['VENDOR_API_TOKEN'] = 'abc123'\n/opt/more\n")
    record = probe.startup.startup_code({}, None, {str(folder / "hotfix.pth"): "vendor-hotfix"},
                                        site_folders=[str(folder)], preload_text="")
    (pth,) = record["pth"]
    assert pth["name"] == "hotfix.pth" and pth["owner"] == "vendor-hotfix" and len(pth["sha256"]) == 64
    assert pth["lines"] == ["import os; os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'", probe.startup.REDACTED_LINE]
    assert "abc123" not in json.dumps(record)


@pytest.mark.parametrize("line, shown", [
    pytest.param('import os; os.environ["https_proxy"]="http://alice:hunter2@proxy.corp:3128"',
                 'import os; os.environ["…"]="…"', id="proxy-credentials"),  # (a lowercase name reads as a word)
    pytest.param('import os; os.environ.setdefault("DB_PASS", "hunter2")',
                 'import os; os.environ.setdefault("DB_PASS", "…")', id="password-default"),
    pytest.param("import sys; sys.path.insert(0, '/home/alice/hotfix')", "import sys; sys.path.insert(0, '…')",
                 id="a-home-path"),
    pytest.param("import os; os.environ['OMP_NUM_THREADS'] = '1'", "import os; os.environ['OMP_NUM_THREADS'] = '1'",
                 id="names-and-plain-values-stay"),
])
def test_literals_in_pth_lines_are_shown_only_when_they_are_names_or_plain_values(probe, line, shown):
    """A deny-list of secret-looking names let credentials through (a review found a proxy password and a
    DB_PASS default in a capture): only names and plain values are shown."""
    assert probe.startup.executable_lines(line + "\n") == [shown]


def test_preloaded_libraries_and_python_variables_are_recorded(probe, tmp_path):
    library = tmp_path / "libhotfix.so.1"
    library.write_bytes(b"\x7fELF hotfix")
    info = _dpkg(tmp_path / "info", "libz1", {str(library): b"\x7fELF hotfix"})
    environ = {"LD_PRELOAD": f"{library}:librelative.so", "PYTHONPATH": f"/opt/a{':'}/opt/b",
               "PYTHONSTARTUP": str(library)}
    record = probe.startup.startup_code(environ, probe.integrity.dpkg_index(str(info)), {}, site_folders=[],
                                        preload_text=f"# comment\n{library}\n", dpkg_info=str(info))
    sha = hashlib.sha256(library.read_bytes()).hexdigest()
    assert record["ld_so_preload"] == [{"name": library.name, "path": str(library), "owner": "libz1", "sha256": sha}]
    assert [entry["name"] for entry in record["ld_preload"]] == [library.name, "librelative.so"]
    assert record["ld_preload"][1]["owner"] is None and record["pythonpath"] == ["/opt/a", "/opt/b"]
    assert record["pythonstartup"] == {"path": str(library), "sha256": sha}


def test_a_dpkg_configuration_file_has_its_package_as_owner(probe, tmp_path):
    conffile = tmp_path / "etc" / "sitecustomize.py"
    conffile.parent.mkdir()
    conffile.write_text("")
    info = _dpkg(tmp_path / "info", "libpython3.11-minimal", {}, conffiles=(str(conffile),))
    owner = probe.startup.owner_of(str(conffile), probe.integrity.dpkg_index(str(info)), {}, str(info))
    assert owner == "libpython3.11-minimal"


def test_the_probe_takes_the_option():
    probe_help = subprocess.run([sys.executable, str(probe_app_path()), "--help"], capture_output=True, text=True, check=False)
    assert "--integrity {full,numerics,off}" in probe_help.stdout


@pytest.mark.parametrize("spec", ["docker:envcheck-fixture/reference", "host"])
def test_the_cli_option_reaches_the_probe_and_the_docker_cache_key(spec):
    from envcheck.cli import _targets

    args = argparse.Namespace(docker_host=None, pull=False, memory=None, gpus=None, image_python=None, cpus=None,
                              latency_budget=None, layers=None, integrity="off")
    (target,) = _targets([spec], args)
    (default,) = _targets([spec], argparse.Namespace(**{**vars(args), "integrity": None}))
    assert (target.integrity, default.integrity) == ("off", DEFAULT_INTEGRITY)
    if spec.startswith("docker:"):  # the cache key holds the run options: a capture without integrity is never served
        assert "--integrity off" in target._run_options()["command"][0]
        assert target._run_options() != default._run_options()


def test_the_host_and_the_probe_agree_on_the_modes(probe):
    assert (probe.integrity.MODES, probe.integrity.DEFAULT_MODE) == (INTEGRITY_MODES, DEFAULT_INTEGRITY)
