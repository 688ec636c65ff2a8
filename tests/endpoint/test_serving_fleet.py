"""A fleet whose site lists a serving endpoint beside nothing else: `fleet run` checks it and keeps its report,
and `envcheck review` (terminal, CSV, metrics) shows the site's service as a row of its own, by its spec."""
from __future__ import annotations

import csv

from envcheck.cli import main


def test_a_fleet_site_with_an_endpoint_target_is_checked_and_reviewed(kserve, tmp_path, capsys):
    spec = kserve.spec("v2", "m")
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(f'golden = "builtin:edge"\n\n[[site]]\nname = "line-3"\ntargets = ["{spec}"]\n')
    reports = tmp_path / "reports"
    code = main(["fleet", "run", str(inventory), "--reports-dir", str(reports), "--no-cache", "--jobs", "1"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in out + err, out + err  # judged, never could-not-decide
    assert len(list((reports / "line-3").glob("envcheck-*.json"))) == 1

    table, metrics = tmp_path / "review.csv", tmp_path / "review.prom"
    code = main(["review", str(reports), "--csv", str(table), "--metrics", str(metrics)])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err, out + err
    assert spec in out and "line-3" in out
    with table.open(newline="") as rows:
        assert any(row.get("spec") == spec and row.get("site") == "line-3" for row in csv.DictReader(rows))
    assert spec in metrics.read_text()
