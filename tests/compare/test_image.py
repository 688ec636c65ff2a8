"""compare/image.py: the same tag naming another image than the golden's is a finding; nothing else is."""
from __future__ import annotations

from envcheck.compare.image import image_findings
from envcheck.compare.policy import build_policy
from envcheck.compare.severity import resolve_findings

GOLDEN = {"ref": "factory/vision:1.4", "id": "sha256:" + "a" * 64, "tags": ["factory/vision:1.4"],
          "repo_digests": ["factory/vision@sha256:" + "1" * 64]}


def docker(ref: str, image_id: str, digests=()) -> dict:
    return {"kind": "docker", "image_ref": ref, "image": {"id": image_id, "repo_digests": list(digests)}}


def test_a_rebuilt_tag_is_named_with_both_images():
    (finding,) = image_findings(docker("factory/vision:1.4", "sha256:" + "b" * 64), GOLDEN)
    assert (finding.code, finding.severity) == ("image-differs-from-golden", "warn")
    assert "bbbbbbbbbbbb" in finding.message and "aaaaaaaaaaaa" in finding.message
    assert "factory/vision@sha256:1111" in finding.message and "no repository digest" in finding.message


def test_the_same_image_another_tag_or_another_kind_says_nothing():
    assert image_findings(docker("factory/vision:1.4", GOLDEN["id"]), GOLDEN) == ()
    assert image_findings(docker("factory/vision:1.5", "sha256:" + "b" * 64), GOLDEN) == ()
    assert image_findings({"kind": "interpreter", "python": "/usr/bin/python3"}, GOLDEN) == ()
    assert image_findings(docker("factory/vision:1.4", "sha256:" + "b" * 64), None) == ()
    ignored = build_policy({"severity": {"finding.image-differs-from-golden": "ignore"}})
    assert resolve_findings(image_findings(docker("factory/vision:1.4", "sha256:" + "b" * 64), GOLDEN), ignored) == ()


def test_a_bare_name_means_latest():
    latest = {**GOLDEN, "ref": "factory/vision", "tags": ["factory/vision:latest"]}
    assert image_findings(docker("factory/vision:latest", "sha256:" + "b" * 64), latest)
    assert image_findings(docker("factory/vision", "sha256:" + "b" * 64), latest)
