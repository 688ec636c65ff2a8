"""Architecture rules, checked on the source with ast: the layers stay as they are drawn in docs/layout.md."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import capture
from envcheck.compare import localization

PACKAGE = Path(__file__).resolve().parents[1] / "envcheck"
PROBE_PACKAGE = PACKAGE / "probe" / "envcheck_probe"  # packed into one zipapp by targets/probe_app.py
PROBE_MODULES = sorted(PROBE_PACKAGE.glob("*.py"))
HEAVY = ("docker", "pandas", "deepdiff", "tensorflow", "numpy", "rich", "cyclonedx")


def _modules(path: Path, top_level_only: bool = False, runtime_only: bool = False) -> set[str]:
    """Full names of the modules a file imports (absolute imports only); `runtime_only` leaves out imports
    made only for type checkers (`if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                node.body = []
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


def _import_time_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """The import statements a module runs when it is imported: everything outside function bodies
    (class bodies, `if` and `try` blocks at module level included)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)
    visit(ast.parse(path.read_text()))
    return found


def test_the_probe_is_a_package_of_small_modules():
    names = {path.name for path in PROBE_MODULES}
    assert {"__init__.py", "__main__.py", "cli.py"} <= names and len(names) > 10
    assert not (PACKAGE / "probe" / "probe.py").exists()


@pytest.mark.parametrize("path", PROBE_MODULES, ids=lambda path: path.name)
def test_probe_modules_import_only_the_standard_library_and_each_other_at_import_time(path):
    siblings = {module.stem for module in PROBE_MODULES}
    for node in _import_time_imports(path):
        if isinstance(node, ast.ImportFrom) and node.level:
            # Relative: only a sibling, so the package works under whatever name it is imported.
            names = [node.module] if node.module else [alias.name for alias in node.names]
            assert node.level == 1 and set(names) <= siblings, (path.name, node.lineno)
            continue
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        for name in names:
            assert name.split(".")[0] in sys.stdlib_module_names, (path.name, node.lineno, name)


@pytest.mark.parametrize("path", [*PROBE_MODULES, PACKAGE / "probe" / "builtin_model.py"],
                         ids=lambda path: path.name)
def test_probe_scripts_parse_as_python_3_8(path):
    ast.parse(path.read_text(), feature_version=(3, 8))


def test_host_tool_never_imports_the_probe_or_tensorflow():
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "probe"):
            continue
        imported = _imports(path)
        assert "tensorflow" not in imported and "keras" not in imported, path
        # targets/probe_app.py packs the probe's files into the zipapp; nothing imports them.
        assert not any(m.startswith("envcheck.probe") for m in _modules(path)), path
        assert "envcheck_probe" not in imported, path


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


@pytest.mark.control
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
    constants: dict[str, list] = {}
    for path in PROBE_MODULES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        constants.setdefault(target.id, []).append(node.value.value)
    for name in ("CAPTURE_SCHEMA", "CAPTURE_FILE", "OUTPUTS_FILE", "LAYERS_SCHEMA"):
        assert len(constants.get(name, [])) == 1, f"{name}: defined {len(constants.get(name, []))} times in the probe"
    constants = {name: values[0] for name, values in constants.items()}
    assert constants["CAPTURE_SCHEMA"] == capture.CAPTURE_SCHEMA
    assert constants["CAPTURE_FILE"] == capture.CAPTURE_FILE
    assert constants["OUTPUTS_FILE"] == capture.OUTPUTS_FILE
    assert constants["LAYERS_SCHEMA"] == localization.LAYERS_SCHEMA


def test_help_imports_no_heavy_module():
    code = ("import sys, contextlib, io\nfrom envcheck.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# Who may import whom inside envcheck: the service (check) sits between the CLI and the stages; the
# stages (runner, targets, compare) never reach up; renderers read a report and nothing else.
FORBIDDEN_IMPORTS = {
    "envcheck/compare": ("envcheck.runner", "envcheck.check", "envcheck.targets", "envcheck.report", "envcheck.cli",
                         "envcheck.review"),
    "envcheck/targets": ("envcheck.compare", "envcheck.runner", "envcheck.check", "envcheck.report", "envcheck.cli",
                         "envcheck.review"),
    "envcheck/runner.py": ("envcheck.compare", "envcheck.check", "envcheck.report", "envcheck.cli", "envcheck.review"),
    "envcheck/report": ("envcheck.compare", "envcheck.runner", "envcheck.check", "envcheck.targets", "envcheck.capture",
                        "envcheck.golden", "envcheck.cli"),
    "envcheck/check.py": ("envcheck.report", "envcheck.cli", "envcheck.review"),
    "envcheck/review": ("envcheck.report", "envcheck.compare", "envcheck.runner", "envcheck.check", "envcheck.targets",
                        "envcheck.cli"),
    "envcheck/capture.py": ("envcheck.targets", "envcheck.runner", "envcheck.check", "envcheck.compare",
                            "envcheck.report", "envcheck.cli"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_IMPORTS))
def test_no_layer_imports_upwards(layer):
    root = PACKAGE.parent / layer
    paths = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
    assert paths, f"{layer} does not exist: update FORBIDDEN_IMPORTS"
    for path in paths:
        wrong = sorted(m for m in _modules(path) for bad in FORBIDDEN_IMPORTS[layer]
                       if m == bad or m.startswith(bad + "."))
        assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports {wrong}"


def test_fleet_renderers_take_the_review_but_never_call_into_it():
    """The review hands its views to the renderers; a renderer needs its type names only."""
    for path in (PACKAGE / "report").rglob("*.py"):
        assert not any(m.startswith("envcheck.review") for m in _modules(path, runtime_only=True)), path


def test_only_the_cli_imports_the_cli_and_the_check_service():
    """The pytest plugin is the check service's other front end (it calls it as the CLI does); the fleet
    service runs it once per site."""
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        imported = _modules(path)
        assert "envcheck.cli" not in imported, path
        if path.name not in ("check.py", "pytest_plugin.py", "fleet.py"):
            assert "envcheck.check" not in imported, path


def test_the_pytest_plugin_imports_only_the_standard_library_and_pytest_at_import_time():
    """pytest loads it (entry point pytest11) in every run of every project that installs envcheck."""
    plugin = PACKAGE / "pytest_plugin.py"
    for node in _import_time_imports(plugin):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("__future__", "pytest"), (node.lineno, name)


def test_renderers_draw_the_view_not_the_run_records():
    """Terminal, HTML, JUnit and Markdown render report.view (built from the JSON dict), never RunReport."""
    for name in ("terminal.py", "html.py", "junit.py", "markdown.py"):
        source = (PACKAGE / "report" / name).read_text()
        assert "envcheck.report.view" in _modules(PACKAGE / "report" / name), name
        assert "RunReport" not in source and "TargetResult" not in source, name
