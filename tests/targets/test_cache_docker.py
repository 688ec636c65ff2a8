"""The capture cache against a real daemon and real fixture images: it is a shortcut that changes nothing but
`target.cache` (differential), it never serves an entry forged under another image's key, it never serves a
latency measured under load to a run alone; probe containers carry their run's label, and `envcheck gc`
removes only old probe containers.

In CI a missing daemon or image fails these tests; on a developer machine they are skipped with
the command that sets them up.
"""
from __future__ import annotations

import contextlib
import copy
import json
import shutil
import time
import uuid
from pathlib import Path

import docker.errors
import pytest
from helpers import docker_with_images

from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir
from envcheck.targets import PROBE_LABEL, RUN_LABEL, run_id
from envcheck.targets import cache as capture_cache
from envcheck.targets.docker import DockerTarget, connect, probe_labels
from envcheck.targets.gc import remove_leftovers
from targets.test_docker import fleet_toml

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PREFIX = "envcheck-fixture"
REFERENCE, DRIFTING = f"docker:{PREFIX}/reference", f"docker:{PREFIX}/tf-older"
SMALLEST = f"{PREFIX}/base:bookworm"


@pytest.fixture(scope="module")
def docker_client(own_probes):
    client = docker_with_images(f"{PREFIX}/reference", f"{PREFIX}/tf-older", SMALLEST)
    yield client
    leftovers = [c.name for c in own_probes(client)]
    client.close()
    assert leftovers == [], f"probe containers left behind: {leftovers}"


def _fleet(run_cli, folder: Path, *options: str, sites: tuple[dict, ...] | None = None) -> tuple[int, dict]:
    """One `fleet run` of the built-in golden (its verdicts on this CPU do not matter: only their equality);
    (exit code, {site: its latest report})."""
    inventory = folder / "fleet.toml"
    inventory.write_text(fleet_toml(builtin_golden_dir(), *(sites or ({"name": "plant", "targets": [REFERENCE, DRIFTING]},))))
    reports = folder / "reports"
    code, _, err, _ = run_cli("fleet", "run", str(inventory), "--reports-dir", str(reports), *options)
    assert "Traceback" not in err, err
    return code, {site.name: json.loads(sorted(site.glob("envcheck-*.json"))[-1].read_text())
                  for site in reports.iterdir() if not site.name.startswith(".")}


@pytest.fixture(scope="module")
def runs(docker_client, tmp_path_factory):
    """The same fleet run three times: without the cache, with it cold (probed, stored), with it warm (served)."""
    from envcheck.cli import main

    def run_cli(*argv: str):
        return main(list(argv)), "", "", None

    off, on = tmp_path_factory.mktemp("cache-off"), tmp_path_factory.mktemp("cache-on")
    cache_dir = on / "cache"
    return {"off": _fleet(run_cli, off, "--no-cache"), "cold": _fleet(run_cli, on, "--cache", str(cache_dir)),
            "warm": _fleet(run_cli, on, "--cache", str(cache_dir)), "cache": cache_dir}


def _without_cache_and_stamps(document: dict) -> dict:
    """A report less what may differ between two runs of one capture: when it was written, and target.cache."""
    document = copy.deepcopy(document)
    document.pop("created", None)
    for target in document["targets"]:
        target["target"].pop("cache", None)
    return document


def test_a_served_capture_gives_the_report_its_probe_gave_but_target_cache(runs):
    (cold_code, cold), (warm_code, warm) = runs["cold"], runs["warm"]
    assert [t["target"].get("cache", {}).get("hit") for t in warm["plant"]["targets"]] == [True, True]
    assert not any("cache" in t["target"] for t in cold["plant"]["targets"])
    assert warm_code == cold_code == ExitCode.DRIFT
    assert _without_cache_and_stamps(warm["plant"]) == _without_cache_and_stamps(cold["plant"])


def test_cache_on_and_off_give_the_same_verdicts_and_evidence(runs):
    (off_code, off), (warm_code, warm) = runs["off"], runs["warm"]

    def evidence(document: dict) -> list:
        return [(t["spec"], t["verdict"], {name: o["status"] for name, o in t["outputs"].items()},
                 [(d["path"], d["severity"]) for d in t["fingerprint_diff"]], [f["code"] for f in t["findings"]],
                 t["output_digest"], t["target"]["image"]["id"]) for t in document["targets"]]

    assert off_code == warm_code
    assert evidence(off["plant"]) == evidence(warm["plant"])
    assert [t["verdict"] for t in warm["plant"]["targets"]][1] == "FAIL"  # the drifting image stays drift


def _entries_by_image(cache_dir: Path) -> dict[str, Path]:
    return {json.loads((entry / "entry.json").read_text())["parts"]["image_id"]: entry
            for entry in cache_dir.iterdir() if not entry.name.startswith(".")}


@pytest.mark.parametrize("forge", [
    pytest.param(lambda good, bad: (shutil.rmtree(bad), shutil.copytree(good, bad)), id="copied"),
    pytest.param(lambda good, bad: (shutil.rmtree(bad), bad.symlink_to(good)), id="linked"),
])
def test_an_entry_forged_under_the_drifting_images_key_never_turns_its_fail_into_a_pass(runs, run_cli, docker_client,
                                                                                      tmp_path, forge):
    """A cache restored from CI artefacts or shared between runners, with the reference image's capture put
    where the drifting image's entry was: the drifting image is probed afresh and still FAILs."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(runs["cache"], cache_dir, symlinks=True)
    entries = _entries_by_image(cache_dir)
    good = entries[docker_client.images.get(REFERENCE.removeprefix("docker:")).id]
    bad = entries[docker_client.images.get(DRIFTING.removeprefix("docker:")).id]
    forge(good, bad)
    code, reports = _fleet(run_cli, tmp_path, "--cache", str(cache_dir))
    drifting = reports["plant"]["targets"][1]
    assert code == ExitCode.DRIFT and drifting["verdict"] == "FAIL"
    assert "cache" not in drifting["target"]


def test_a_latency_measured_while_other_sites_ran_is_never_served_to_a_site_checked_alone(run_cli, docker_client,
                                                                                        tmp_path):
    """Two sites on one machine checked at once, then one of them alone: its latency is measured again, not
    taken from the run where it competed for the CPUs (which the judge would read as measured alone)."""
    sites = ({"name": "line-1", "targets": [REFERENCE]}, {"name": "line-2", "targets": [REFERENCE]})
    cache_dir = tmp_path / "cache"
    _fleet(run_cli, tmp_path, "--cache", str(cache_dir), "--jobs", "2", sites=sites)
    stored = [json.loads((entry / "entry.json").read_text())["parts"]["latency_context"]
              for entry in cache_dir.iterdir() if not entry.name.startswith(".")]
    assert stored and all(context["concurrent_probes"] == 2 for context in stored), stored
    _, alone = _fleet(run_cli, tmp_path, "--cache", str(cache_dir), "--sites", "line-1", sites=sites)
    assert "cache" not in alone["line-1"]["targets"][0]["target"]


def test_the_machine_behind_a_daemon_is_read_there_by_a_tiny_container(docker_client):
    """What a remote daemon's key holds, read here through the local daemon: the same facts as read directly."""
    client = connect(None)
    try:
        facts = DockerTarget(spec="x", image=SMALLEST)._remote_machine(client, client.images.get(SMALLEST), 60)
    finally:
        client.close()
    assert facts is not None and facts == capture_cache.local_machine()
    assert facts.cpu_flags  # every CPU envcheck runs on has flags


def test_probe_containers_carry_this_runs_label_and_a_foreign_run_is_left_alone(run_cli, docker_client, own_probes,
                                                                               tmp_path):
    """Another envcheck on the same daemon: its probe container is neither counted as ours nor removed."""
    foreign = docker_client.containers.create(SMALLEST, ["sleep", "60"],
                                              labels={PROBE_LABEL: "1", RUN_LABEL: "another-run"})
    try:
        assert probe_labels() == {PROBE_LABEL: "1", RUN_LABEL: run_id()}
        code, _ = _fleet(run_cli, tmp_path, "--no-cache", sites=({"name": "p", "targets": [REFERENCE]},))
        assert code in (ExitCode.OK, ExitCode.DRIFT)
        assert own_probes(docker_client) == []
        foreign.reload()  # still there
    finally:
        foreign.remove(force=True)


def test_gc_removes_only_old_probe_containers(docker_client):
    """A killed run's probe container goes once old enough; another tool's container, labelled like it but for
    envcheck's probe label, stays. (Scoped to the killed run's id: the daemon may be running others' probes.)"""
    killed = f"killed-{uuid.uuid4().hex}"
    made = {name: docker_client.containers.create(SMALLEST, ["true"], labels=labels)
            for name, labels in (("probe", {PROBE_LABEL: "1", RUN_LABEL: killed}),
                                 ("other-tool", {RUN_LABEL: killed, "com.example.job": "1"}))}
    try:
        assert remove_leftovers(None, older_than_s=3600, run=killed) == []  # too young
        time.sleep(1.5)
        assert remove_leftovers(None, older_than_s=1, run=killed) == [made["probe"].name]
        made["other-tool"].reload()  # still there
    finally:
        for container in made.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
