"""The fleet inventory (fleet.toml) and `fleet status`, without Docker: a bad inventory is one line naming the
key before anything runs; a site whose golden cannot be used is that site's error, never the fleet's."""
from __future__ import annotations

import json

import pytest

from envcheck.errors import ExitCode, UsageError
from envcheck.fleet import check_site, load_inventory, select

GOOD = '''golden = "golden/vision"
[[site]]
name = "shenzhen-3"
docker_host = "ssh://ops@edge-17"
targets = ["docker:factory/vision:1.4", "docker:factory/vision:1.5"]
labels = { region = "south", line = "3" }
[[site]]
name = "beijing-1"
targets = ["host"]
golden = "builtin:edge"
'''


def inventory(tmp_path, text: str):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_the_inventory_reads_as_written(tmp_path):
    shenzhen, beijing = load_inventory(inventory(tmp_path, GOOD))
    assert (shenzhen.name, shenzhen.docker_host, shenzhen.labels) == ("shenzhen-3", "ssh://ops@edge-17",
                                                                       {"region": "south", "line": "3"})
    assert shenzhen.targets == ("docker:factory/vision:1.4", "docker:factory/vision:1.5")
    assert shenzhen.golden == str(tmp_path / "golden" / "vision")  # relative to the inventory
    assert (beijing.golden, beijing.docker_host) == ("builtin:edge", None)
    assert [site.name for site in select([shenzhen, beijing], ["beijing-1"])] == ["beijing-1"]
    with pytest.raises(UsageError, match="no site nanjing"):
        select([shenzhen, beijing], ["nanjing"])


@pytest.mark.parametrize("text, says", [
    (GOOD.replace("targets = [\"host\"]", "targts = [\"host\"]"), "targts"),
    (GOOD.replace('name = "beijing-1"', 'name = "../etc"'), "$.site[1].name"),
    (GOOD.replace("ssh://ops@edge-17", "ftp://edge-17"), "$.site[0].docker_host"),
    (GOOD.replace('name = "beijing-1"', 'name = "shenzhen-3"'), "unique (shenzhen-3"),
    ("[[site]]\nname = \"a\"\ntargets = []\n", "$.site[0].targets"),
    ("golden = [", "not valid TOML"),
])
def test_a_bad_inventory_is_one_line_naming_the_problem(tmp_path, text, says):
    with pytest.raises(UsageError) as caught:
        load_inventory(inventory(tmp_path, text))
    assert says in str(caught.value) and str(tmp_path) in str(caught.value)


def test_a_missing_inventory_is_a_usage_error(run_cli, tmp_path):
    with pytest.raises(SystemExit) as exited:
        run_cli("fleet", "run")
    assert exited.value.code == ExitCode.USAGE
    code, _, err, _ = run_cli("fleet", "run", str(tmp_path / "nowhere.toml"))
    assert code == ExitCode.USAGE and "inventory not found" in err and "Traceback" not in err


def test_a_site_whose_golden_is_missing_is_its_own_error(tmp_path):
    (site,) = load_inventory(inventory(tmp_path, '[[site]]\nname = "a"\ngolden = "gone"\ntargets = ["host"]\n'))
    run = check_site(site, tmp_path / "reports", timeout=60)
    assert run.report is None and run.exit_code == ExitCode.UNDECIDED and "golden bundle not found" in run.error
    assert not (tmp_path / "reports").exists()


def test_status_shows_each_sites_latest_report_and_names_a_broken_one(run_cli, tmp_path):
    reports = tmp_path / "reports"
    for site, created, verdict in (("a", "20261201T000000.000000Z", "FAIL"), ("a", "20261202T000000.000000Z", "PASS"),
                                   ("b", "20261202T000000.000000Z", "ERROR")):
        folder = reports / site
        folder.mkdir(parents=True, exist_ok=True)
        document = {"schema": "envcheck.report/1", "envcheck_version": "0.1.0",
                    "created": f"{created[:4]}-{created[4:6]}-{created[6:8]}T00:00:00Z",
                    "exit_code": 0 if verdict == "PASS" else 3, "fail_on": "fail",
                    "golden": {"path": "g", "sha256": "0" * 64}, "summary": {verdict: 1}, "targets": []}
        (folder / f"envcheck-{created}.json").write_text(json.dumps(document))
    (reports / "c").mkdir()
    (reports / "c" / "envcheck-20261203T000000.000000Z.json").write_text("{torn")
    code, out, _, _ = run_cli("fleet", "status", "--reports-dir", str(reports))
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert code == ExitCode.OK
    assert lines["a"][1] == "PASS" and lines["b"][1] == "ERROR" and "unreadable" in " ".join(lines["c"])


def test_latency_is_judged_for_sites_on_machines_of_their_own(tmp_path, monkeypatch):
    """Sites checked at once share a machine only when their daemons do: two edge boxes behind their own
    daemons are each measured alone (judged); two sites on this machine's daemon are not."""
    import envcheck.fleet as fleet

    seen: dict[str, int] = {}

    def record(site, reports_dir, **options):
        seen[site.name] = options["others_at_once"]
        return fleet.SiteRun(site=site, report=None, path=None, error="not run")

    monkeypatch.setattr(fleet, "check_site", record)
    sites = [fleet.Site(name="edge-1", targets=("docker:x",), docker_host="ssh://ops@edge-1"),
             fleet.Site(name="edge-1-tls", targets=("docker:x",), docker_host="tcp://edge-1:2376"),
             fleet.Site(name="edge-2", targets=("docker:x",), docker_host="ssh://ops@edge-2"),
             fleet.Site(name="here-a", targets=("docker:x",)),
             fleet.Site(name="here-b", targets=("docker:x",), docker_host="unix:///var/run/docker.sock"),
             fleet.Site(name="here-ssh", targets=("docker:x",), docker_host="ssh://ops@127.0.0.2")]
    fleet.run_fleet(sites, tmp_path, jobs=4, timeout=10)
    assert seen == {"edge-1": 1, "edge-1-tls": 1, "edge-2": 0, "here-a": 2, "here-b": 2, "here-ssh": 2}
    fleet.run_fleet(sites, tmp_path, jobs=1, timeout=10)
    assert set(seen.values()) == {0}, "one site at a time: every site is measured alone"
