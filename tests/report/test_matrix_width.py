"""`envcheck review` at 80 columns (a terminal, or a CI log where COLUMNS or rich's default sets the width):
the verdict matrix of 50 targets × 20 sites and of the small recorded fleet fits, no verdict or name is
broken across lines, every cell of the matrix is there, and every site and target is named in full somewhere.

The output is read back the way a reviewer reads it (header codes, the key, row labels), not compared with a
snapshot: the checks hold whatever the layout decides."""
from __future__ import annotations

import copy
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from helpers import REPO, RECORDED_REPORTS
from envcheck.report.fleet_terminal import BADGES, NOT_RUN, render_review
from envcheck.review import review

CITIES = ["shenzhen", "beijing", "chengdu", "wuhan", "xian", "guangzhou", "hangzhou", "nanjing", "suzhou", "tianjin"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shared_registry(i: int) -> str:
    return f"docker:registry.example.com/factory/runtime-{i + 1:02d}:2.15-cpu"


def distinct_long(i: int) -> str:
    """Names that share no long prefix and differ in the middle: they must be shortened, coded and keyed."""
    return f"docker:{CITIES[i % 10]}-mirror.example.com/team-{i:02d}/tf-serving-gpu:2.15.{i}-cpu"


def write_fleet(folder: Path, targets: int, sites: int, spec=shared_registry) -> Path:
    """`sites` reports of `targets` targets each, cut from the recorded reports (verdicts, digests and image
    ids as recorded, cycling), with site and target names changed."""
    pool = [t for f in sorted(RECORDED_REPORTS.glob("*.json")) for t in json.loads(f.read_text())["targets"]]
    base = json.loads((RECORDED_REPORTS / "shenzhen-3.json").read_text())
    folder.mkdir(exist_ok=True)
    for s in range(sites):
        site = f"plant-{CITIES[s % 10]}-{s + 1:02d}"
        report = dict(base, targets=[])
        for i in range(targets):
            target = copy.deepcopy(pool[(i + s) % len(pool)])
            target["site"], target["spec"] = site, spec(i)
            target["target"]["image_ref"] = spec(i).removeprefix("docker:")
            report["targets"].append(target)
        (folder / f"{site}.json").write_text(json.dumps(report))
    return folder


def shown(result, width: int = 80, terminal: bool = False) -> str:
    """What `envcheck review` prints at `width`: a CI log (no terminal), or a terminal with its colours removed."""
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system="standard" if terminal else None)
    console.print(render_review(result))
    return ANSI.sub("", console.file.getvalue())


def read_matrix(text: str, rows: int) -> tuple[dict[str, str], dict[tuple[str, str], str], str]:
    """The key (code → name, row codes too), every cell by (row label, column header), and the shared prefix
    named above the matrix ('' if none), read back from the printed text."""
    lines = text.splitlines()
    key = {code: name for line in lines if re.match(r"^[ST]\d+ \S", line)
           for code, name in re.findall(r"([ST]\d+) (\S+)", line)}
    prefix = next((m.group(1) for line in lines if (m := re.match(r"^every \w+ name begins (\S+)", line))), "")
    cells: dict[tuple[str, str], str] = {}
    for n, line in enumerate(lines):
        header = re.match(r"^(target|site) +(.+?) *$", line)
        if not header:
            continue
        columns = header.group(2).split()
        for row in lines[n + 1:n + 1 + rows]:
            label, *badges = row.rstrip().rsplit(None, len(columns))
            assert len(badges) == len(columns), row
            cells.update({(label.strip(), column): badge for column, badge in zip(columns, badges, strict=True)})
    return key, cells, prefix


def name_of(label: str, key: dict[str, str], prefix: str) -> str:
    """The full name a row label or column header stands for."""
    code = label.split()[0]
    return prefix + key[code] if re.fullmatch(r"[ST]\d+", code) and code in key else prefix + label


def assert_readable(text: str, result, width: int = 80) -> None:
    """Every line fits; every cell of the matrix is read back as its verdict's badge (so no badge is broken);
    every site and target is printed whole, or as the shared prefix and its label."""
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    (section,) = result.sections
    matrix = section.matrix
    down = "target" if len(matrix.columns) >= len(matrix.index) else "site"
    key, cells, prefix = read_matrix(text, rows=len(matrix.columns if down == "target" else matrix.index))
    expected = {}
    for site, row in matrix.iterrows():
        for target, verdict in row.items():
            expected[(target, site) if down == "target" else (site, target)] = BADGES[verdict] if isinstance(verdict, str) \
                else NOT_RUN
    read = {}
    for (label, header), badge in cells.items():
        read[(name_of(label, key, prefix if down == "target" else ""), key.get(header, header))] = badge
    # Columns are headed by codes, or by names when they all fit (then no prefix is cut from them).
    assert read == expected
    printed = "\n".join(lines)
    for name in [*map(str, matrix.index), *map(str, matrix.columns)]:
        assert name in printed or (prefix and name.startswith(prefix) and name[len(prefix):] in printed), name
    for verdict in ("IDENTICAL", "ERROR"):  # the words the badges shorten are spelled out in the legend
        assert verdict in printed


@pytest.fixture(scope="module")
def fleet_50x20(tmp_path_factory):
    return review([write_fleet(tmp_path_factory.mktemp("fleet") / "reports", targets=50, sites=20)])


@pytest.mark.parametrize("terminal", [False, True], ids=["ci-log", "terminal"])
def test_50_targets_by_20_sites_fit_80_columns(fleet_50x20, terminal):
    text = shown(fleet_50x20, terminal=terminal)
    assert_readable(text, fleet_50x20)
    assert "50 targets down, 20 sites across" in text


def test_terminal_and_ci_log_have_the_same_layout(fleet_50x20):
    assert shown(fleet_50x20, terminal=True) == shown(fleet_50x20, terminal=False)


@pytest.mark.parametrize("width", [80, 60, 120])
def test_recorded_fleet_fits(width):
    result = review([RECORDED_REPORTS])
    assert_readable(shown(result, width), result, width)


def test_long_names_are_shortened_and_keyed_in_full(tmp_path):
    """Target names of 60-odd cells with nothing long in common: each row is coded, and the key names it whole."""
    result = review([write_fleet(tmp_path / "reports", targets=12, sites=6, spec=distinct_long)])
    text = shown(result)
    assert_readable(text, result)
    assert "…" in text  # the row labels were shortened …
    for i in range(12):
        assert re.search(rf"^T\d+ {re.escape(distinct_long(i))}$", text, re.MULTILINE)  # … and the key names each whole


def test_cli_at_columns_80_in_a_ci_log(tmp_path):
    """The command as CI runs it: stdout a pipe, COLUMNS=80."""
    folder = write_fleet(tmp_path / "reports", targets=50, sites=20)
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "envcheck", "review", str(folder)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_readable(done.stdout, review([folder]))
    assert "\x1b[" not in done.stdout  # plain text in a log
