"""Architecture rules, checked on the source with ast (Polygraphy's habit)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import capture

PACKAGE = Path(__file__).resolve().parents[1] / "envcheck"
PROBE = PACKAGE / "probe" / "probe.py"
HEAVY = ("docker", "pandas", "deepdiff", "tensorflow", "numpy", "rich")


def _modules(path: Path, top_level_only: bool = False) -> set[str]:
    """Full names of the modules a file imports (absolute imports only)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    return {name.split(".")[0] for name in _modules(path, top_level_only)}


def test_probe_imports_only_the_standard_library_at_import_time():
    assert _imports(PROBE, top_level_only=True) <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("script", ["probe.py", "builtin_model.py"])
def test_probe_scripts_parse_as_python_3_8(script):
    ast.parse((PACKAGE / "probe" / script).read_text(), feature_version=(3, 8))


def test_host_tool_never_imports_the_probe_or_tensorflow():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "probe":
            continue
        imported = _imports(path)
        assert "tensorflow" not in imported and "keras" not in imported, path
        assert not any(m.startswith("envcheck.probe") for m in _modules(path)), path


def test_compare_never_touches_docker():
    for path in (PACKAGE / "compare").rglob("*.py"):
        assert "docker" not in _imports(path), path


def test_only_the_review_package_imports_pandas():
    """The fleet review loads and computes its tables in envcheck/review/; its renderers (report/fleet_*.py)
    are handed those tables and format them without importing pandas."""
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] != "review":
            assert "pandas" not in _imports(path), path


FILE_READING_CALLS = {"open", "read_text", "read_bytes", "glob", "rglob", "iterdir", "scandir", "listdir", "walk"}


def _file_reads(source: str) -> list[str]:
    """The calls in `source` that open, read or list files (`json.load` included), as "line: name"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        is_json_load = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (func.value.id, name) == (
            "json", "load")
        if name in FILE_READING_CALLS or is_json_load:
            found.append(f"{node.lineno}: {name}")
    return found


def test_control_file_reads_are_recognised():
    """Control: the rule below would see each way of reading a file."""
    source = "open(p)\nPath(p).read_text()\np.read_bytes()\njson.load(f)\np.glob('*')\np.rglob('*')\np.iterdir()\n"
    assert len(_file_reads(source)) == 7 and _file_reads("json.dumps(x)\ntext.strip()") == []


def test_report_renderers_never_read_files():
    """envcheck/report/ holds renderers only: what they show is handed to them (a report dict, a Review)."""
    for path in (PACKAGE / "report").rglob("*.py"):
        assert _file_reads(path.read_text()) == [], path


def test_docker_errors_stay_inside_targets():
    for path in PACKAGE.rglob("*.py"):
        if "targets" not in path.parts:
            assert "docker.errors" not in path.read_text(), path


def test_probe_constants_agree_with_the_host_side():
    constants = {}
    for node in ast.parse(PROBE.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            constants[node.targets[0].id] = node.value.value
    assert constants["CAPTURE_SCHEMA"] == capture.CAPTURE_SCHEMA
    assert constants["CAPTURE_FILE"] == capture.CAPTURE_FILE
    assert constants["OUTPUTS_FILE"] == capture.OUTPUTS_FILE


def test_help_imports_no_heavy_module():
    code = ("import sys, contextlib, io\nfrom envcheck.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
