"""Image signatures with `--verify-signature` (targets/provenance.py, compare/signature.py), for real: a throwaway
GPG key signs a fixture image into a `dir:` layout with Debian's skopeo, and skopeo verifies it against a
containers policy.json. No registry is involved: the signed identity is a name under `.invalid`, never contacted.

The option's command-line errors need neither Docker nor skopeo; the rest fails loudly in CI without them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import docker_with_images, require

from envcheck.compare.signature import signature_findings
from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir
from envcheck.targets.provenance import SignatureCheck, skopeo_error

SIGNED_IMAGE = "envcheck-fixture/no-tf:latest"  # small, and its probe ends at once: no TensorFlow in it
IDENTITY = "envcheck.invalid/fixture/no-tf:latest"
REFERENCE_IMAGE = "envcheck-fixture/reference:latest"


def _gpg(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", *args], env={**os.environ, "GNUPGHOME": str(home)}, check=True,
                          capture_output=True, **kwargs)


def _new_key(home: Path, name: str) -> tuple[str, Path]:
    """A key without passphrase: (its fingerprint, its public key file)."""
    _gpg(home, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@envcheck.invalid>", "default", "default", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", f"{name}@envcheck.invalid").stdout.decode()
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public = home.parent / f"{name}.asc"
    public.write_bytes(_gpg(home, "--armor", "--export", fingerprint).stdout)
    return fingerprint, public


def _policy(path: Path, key: Path) -> Path:
    """Reject everything but a `dir:` image signed by `key` for IDENTITY."""
    path.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"dir": {"": [{
        "type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key),
        "signedIdentity": {"type": "exactReference", "dockerReference": IDENTITY}}]}}}))
    return path


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """SIGNED_IMAGE signed once into a dir: layout; a policy that trusts its key and one that trusts another."""
    require(shutil.which("skopeo") is not None and shutil.which("gpg") is not None,
            "skopeo and gpg (apt-get install skopeo gnupg)")
    client = docker_with_images(SIGNED_IMAGE)
    image_id = client.images.get(SIGNED_IMAGE).id
    client.close()
    root = tmp_path_factory.mktemp("signature")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    try:
        signer, signer_key = _new_key(home, "signer")
        other, other_key = _new_key(home, "other")
        layout = root / "signed"
        subprocess.run(["skopeo", "copy", "--quiet", "--sign-by", signer, "--sign-identity", IDENTITY,
                        f"docker-daemon:{SIGNED_IMAGE}", f"dir:{layout}"],
                       env={**os.environ, "GNUPGHOME": str(home)}, check=True, capture_output=True)
        yield {"ref": f"dir:{layout}", "image_id": image_id, "signer": signer, "other": other,
               "trusting": _policy(root / "trusting.json", signer_key), "other_key": _policy(root / "other.json", other_key)}
    finally:  # the agent gpg started for this home
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=False)


@pytest.mark.docker
def test_an_image_signed_by_a_trusted_key_verifies(signed):
    check = SignatureCheck.from_options(signed["trusting"], signed["ref"], docker_targets=1)
    result = check.verify(SIGNED_IMAGE, signed["image_id"], [], timeout=120)
    assert result["verified"] is True, result["error"]
    assert result["error"] is None
    assert result["key_fingerprints"] == [signed["signer"]]
    assert result["reference"] == signed["ref"] and result["policy"] == str(signed["trusting"])
    assert result["manifest_digest"].startswith("sha256:")
    assert signature_findings({"image_ref": SIGNED_IMAGE, "signature": result}) == ()


@pytest.mark.docker
def test_a_signature_by_another_key_is_rejected_and_its_signer_named(signed):
    check = SignatureCheck.from_options(signed["other_key"], signed["ref"], docker_targets=1)
    result = check.verify(SIGNED_IMAGE, signed["image_id"], [], timeout=120)
    assert result["verified"] is False
    assert result["key_fingerprints"] == [signed["other"]]  # what the policy trusts, not who signed
    assert "rejected" in result["error"] and signed["signer"] in result["error"]
    assert "gpgme" not in result["error"] and "\n" not in result["error"]
    (finding,) = signature_findings({"image_ref": SIGNED_IMAGE, "signature": result})
    assert (finding.code, finding.severity) == ("image-signature-unverified", "fail")
    assert signed["ref"] in finding.message and str(signed["other_key"]) in finding.message


@pytest.mark.docker
def test_a_signed_copy_of_another_image_does_not_verify_this_one(signed):
    """A good signature proves nothing about a target whose image is not the one signed."""
    check = SignatureCheck.from_options(signed["trusting"], signed["ref"], docker_targets=1)
    other_id = "sha256:" + "0" * 64
    result = check.verify(SIGNED_IMAGE, other_id, ["example.invalid/x@sha256:" + "1" * 64], timeout=120)
    assert result["verified"] is False
    assert "not the one the daemon runs" in result["error"] and other_id in result["error"]


@pytest.mark.docker
def test_the_docker_target_records_the_signature_and_the_platform(signed, tmp_path):
    from envcheck.targets.docker import DockerTarget

    check = SignatureCheck.from_options(signed["trusting"], signed["ref"], docker_targets=1)
    target = DockerTarget(spec=f"docker:{SIGNED_IMAGE}", image=SIGNED_IMAGE, signature=check, latency_budget=0)
    outcome = target.run(builtin_golden_dir(), tmp_path, timeout=120)
    assert outcome.target_info["signature"]["verified"] is True, outcome.target_info["signature"]
    image = outcome.target_info["image"]
    assert image["id"] == signed["image_id"]
    assert image["architecture"] and image["os"] == "linux" and "variant" in image


@pytest.mark.docker
@pytest.mark.slow
def test_check_fails_the_gate_when_the_signed_image_is_not_the_target(signed, run_cli):
    """The reference image checked against a signed copy of another image: the finding fails the gate (exit 1)."""
    docker_with_images(REFERENCE_IMAGE).close()
    code, _, err, report = run_cli("check", "--target", f"docker:{REFERENCE_IMAGE}", "--latency-budget", "0",
                                   "--verify-signature", str(signed["trusting"]), "--signed-ref", signed["ref"])
    target = report["targets"][0]
    assert target["target"]["signature"]["verified"] is False
    (finding,) = [f for f in target["findings"] if f["code"] == "image-signature-unverified"]
    assert finding["severity"] == "fail" and "not the one the daemon runs" in finding["message"]
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL", err


# ----------------------------------------------------------------------------- without Docker or skopeo

@pytest.fixture
def policy(tmp_path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "reject"}]}))
    return path


def test_without_skopeo_the_option_is_one_line_and_exit_3(run_cli, policy, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err, _ = run_cli("check", "--target", "docker:envcheck-fixture/reference", "--verify-signature", str(policy))
    assert code == ExitCode.UNDECIDED
    assert "skopeo" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(("extra", "said"), [
    pytest.param(["--target", "docker:a", "--signed-ref", "dir:/x"], "needs --verify-signature", id="ref-alone"),
    pytest.param(["--target", "host", "--verify-signature", "POLICY"], "no docker: target", id="no-docker-target"),
    pytest.param(["--target", "docker:a", "--target", "docker:b", "--verify-signature", "POLICY", "--signed-ref",
                  "dir:/x"], "2 docker: targets", id="ref-for-two-images"),
    pytest.param(["--target", "docker:a", "--verify-signature", "POLICY", "--signed-ref", "/x"], "not a skopeo reference",
                 id="ref-without-transport"),
    pytest.param(["--target", "docker:a", "--verify-signature", "MISSING"], "not a readable policy.json", id="no-policy"),
    pytest.param(["--target", "docker:a", "--verify-signature", "LIST"], "a JSON object", id="policy-not-object"),
])
def test_option_mistakes_are_usage_errors(run_cli, policy, extra, said):
    listed = policy.parent / "list.json"
    listed.write_text("[]")
    names = {"POLICY": str(policy), "MISSING": str(policy.parent / "missing.json"), "LIST": str(listed)}
    code, _, err, _ = run_cli("check", *[names.get(arg, arg) for arg in extra])
    assert code == ExitCode.USAGE and said in err and len(err.strip().splitlines()) == 1, err


def test_skopeo_error_is_one_line_naming_the_signer():
    """skopeo 1.9's words for a signature by an untrusted key: gpgme's struct dump becomes the signer's key."""
    stderr = ('time="2026-12-07T19:29:05Z" level=fatal msg="Source image rejected: Invalid GPG signature: '
              'gpgme.Signature{Summary:128, Fingerprint:\\"A5C4E57383B360221583512374D8F308FD48C29D\\", '
              'Status:gpgme.Error{err:0x9}, Timestamp:time.Date(2026, time.December, 7), PubkeyAlgo:1, HashAlgo:10}"\n')
    assert skopeo_error(stderr) == ("Source image rejected: Invalid GPG signature: signed by key "
                                    "A5C4E57383B360221583512374D8F308FD48C29D, which no key of the policy verifies")


@pytest.mark.parametrize(("signature", "findings"), [
    pytest.param(None, 0, id="not-asked"),
    pytest.param({"verified": True, "error": None}, 0, id="verified"),
    pytest.param({"verified": False, "error": "A signature was required, but no signature exists"}, 1, id="unsigned"),
])
def test_only_an_unverified_signature_is_a_finding(signature, findings):
    info = {"kind": "docker", "image_ref": "img"} | ({"signature": signature} if signature else {})
    assert len(signature_findings(info)) == findings
