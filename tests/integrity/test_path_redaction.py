"""The probe's own records of where files lie (integrity.py, startup.py, libraries.py), made in a home folder,
name no person once shared (envcheck/redact.py through the registry's `holds_paths` fields): every field the probe
writes a path into is covered. No TensorFlow."""
from __future__ import annotations

import json

from envcheck.redact import hash_identifier, redact_fingerprint

HOME = "/home/alice"


def _made_in_a_home(probe, tmp_path) -> dict:
    """A fingerprint as the probe records it in `tmp_path`, then moved (as text) into /home/alice."""
    site = tmp_path / "venv" / "site"
    site.mkdir(parents=True)
    (site / "hotfix.pth").write_text("import hotfix\n")
    (tmp_path / ".pythonrc").write_text("")
    environ = {"LD_PRELOAD": f"{tmp_path}/hook.so", "PYTHONPATH": f"{tmp_path}/src:/srv/app",
               "PYTHONSTARTUP": f"{tmp_path}/.pythonrc", "LD_LIBRARY_PATH": f"/usr/lib:{tmp_path}/cuda"}
    startup = probe.startup.startup_code(environ, None, {}, site_folders=[str(site)],
                                         preload_text=f"{tmp_path}/preloaded.so\n")
    library = f"{tmp_path}/venv/lib/libcudnn.so.9"
    system = probe.integrity.system_integrity({}, {}, objects=[library, "/usr/lib/libm.so.6"], interpreter=[])
    loaded = probe.libraries.loaded_libraries(f"7f00-7f01 r-xp 0 00:00 1 {library}\n")
    fingerprint = {"env": probe.environment.allowed_environment(environ), "native_libraries": {"loaded": loaded},
                   "integrity": {"mode": "numerics", "python": {}, "system": system, "startup": startup}}
    return json.loads(json.dumps(fingerprint).replace(str(tmp_path), HOME))


def test_every_path_the_probe_records_is_shared_without_the_home_owner(probe, tmp_path):
    made = _made_in_a_home(probe, tmp_path)
    assert json.dumps(made).count(HOME) >= 9  # the record does hold home paths in each of its path fields
    shared = redact_fingerprint(made)
    assert "alice" not in json.dumps(shared)
    token = f"/home/{hash_identifier('alice')}"
    assert shared["integrity"]["startup"]["pth"][0]["path"] == f"{token}/venv/site/hotfix.pth"
    assert shared["integrity"]["system"]["unowned"] == [f"{token}/venv/lib/libcudnn.so.9", "/usr/lib/libm.so.6"]
    assert shared["integrity"]["startup"]["pythonpath"] == [f"{token}/src", "/srv/app"]
