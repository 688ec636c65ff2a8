"""Image provenance: is the image a Docker target runs the one a trusted key signed? (`--verify-signature`).

The Docker daemon stores no signatures, so the signature is verified where the signed image lives (a registry
in production, `docker://IMAGE` by default, or the skopeo reference `--signed-ref` names, e.g. `dir:PATH`), by
Debian's `skopeo` against a containers `policy.json` (a `signedBy` requirement with a GPG key). skopeo checks the
policy only while copying, so the signed image is copied into a temporary `dir:` layout, which is removed after;
its manifest is the one skopeo verified. A verified signature proves nothing about this target unless that
manifest is the image the daemon runs, so the second half of the check binds them: the manifest's config digest
is the image id (or the manifest's digest is the image id or one of its repo digests).

The result goes into the target info as `signature` (docs/integrity.md); a failed verification becomes the
finding `image-signature-unverified` (compare/signature.py).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envcheck.errors import EnvcheckError, UsageError
from envcheck.targets.process import run_child

SKOPEO = "skopeo"
GPG = "gpg"
ERROR_CHARS = 400
# skopeo's fatal line: time="…" level=fatal msg="…"
FATAL_MESSAGE = re.compile(r'level=fatal msg="((?:[^"\\]|\\.)*)"')
# A signature by a key the policy does not trust is reported as gpgme's struct dump; its signer is the useful part.
GPGME_DUMP = re.compile(r'gpgme\.Signature\{.*?Fingerprint:\\?"([0-9A-Fa-f]+)\\?".*\}')


@dataclass(frozen=True)
class SignatureCheck:
    """What `--verify-signature POLICY [--signed-ref REF]` asks of each Docker target."""

    policy: Path
    """A containers policy.json (containers-policy.json(5)) that skopeo verifies the signed image against."""
    signed_ref: str | None = None
    """The skopeo reference of the signed image (`dir:PATH`, `docker://REGISTRY/NAME:TAG`…); None: `docker://IMAGE`."""

    @classmethod
    def from_options(cls, policy: Path | None, signed_ref: str | None, docker_targets: int) -> SignatureCheck | None:
        """The check the options ask for, validated before anything runs; None without --verify-signature.

        UsageError for what the command line got wrong; EnvcheckError (exit 3: could not decide) without skopeo,
        since a gate that asked for a signature must not pass an image it could not check."""
        if policy is None:
            if signed_ref is not None:
                raise UsageError("--signed-ref names where the signed image lives: it needs --verify-signature POLICY")
            return None
        if docker_targets == 0:
            raise UsageError("--verify-signature checks the signatures of Docker images: no docker: target is given")
        if signed_ref is not None and docker_targets != 1:
            raise UsageError(f"--signed-ref names the signed copy of one image, but {docker_targets} docker: targets "
                             "are given (check them one at a time)")
        if signed_ref is not None and not re.fullmatch(r"[a-z][a-z0-9-]*:.+", signed_ref):
            raise UsageError(f"--signed-ref {signed_ref!r}: not a skopeo reference (TRANSPORT:NAME, e.g. dir:PATH or "
                             "docker://REGISTRY/NAME:TAG)")
        read_policy(policy)
        if shutil.which(SKOPEO) is None:
            raise EnvcheckError("--verify-signature needs skopeo, which is not on PATH (Debian: apt-get install skopeo)")
        return cls(policy=policy, signed_ref=signed_ref)

    def reference(self, image: str) -> str:
        """The skopeo reference verified for the target image `image`."""
        return self.signed_ref or f"docker://{image}"

    def verify(self, image: str, image_id: str, repo_digests: list[str], timeout: float) -> dict[str, Any]:
        """The target info's `signature`: verified or not, against which policy and keys, and why not."""
        reference = self.reference(image)
        result: dict[str, Any] = {"verified": False, "policy": str(self.policy), "reference": reference,
                                  "key_fingerprints": trusted_key_fingerprints(read_policy(self.policy),
                                                                               transport_of(reference)),
                                  "manifest_digest": None, "error": None}
        with tempfile.TemporaryDirectory(prefix="envcheck-signature-") as scratch:
            verified_copy = Path(scratch) / "verified"
            error = self._skopeo_copy(reference, verified_copy, timeout)
            if error is None:
                manifest = (verified_copy / "manifest.json").read_bytes()
                result["manifest_digest"] = "sha256:" + hashlib.sha256(manifest).hexdigest()
                error = _not_this_image(manifest, result["manifest_digest"], image_id, repo_digests)
        result["verified"], result["error"] = error is None, error
        return result

    def _skopeo_copy(self, reference: str, destination: Path, timeout: float) -> str | None:
        """Copy `reference` to `destination` under the policy; None when skopeo accepted it, else why not."""
        command = [SKOPEO, "--policy", str(self.policy), "copy", "--quiet", reference, f"dir:{destination}"]
        try:
            ended = run_child(command, timeout=timeout)
        except OSError as error:  # removed since the options were checked
            return f"skopeo could not be run: {error}"
        if ended.timed_out:
            return f"skopeo did not finish within {timeout:g} s"
        if ended.returncode != 0:
            return skopeo_error(ended.stderr_tail)
        return None


def read_policy(policy: Path) -> dict[str, Any]:
    """The policy document; UsageError when it is not a readable JSON object."""
    try:
        document = json.loads(Path(policy).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--verify-signature {policy}: not a readable policy.json ({error})") from None
    if not isinstance(document, dict):
        raise UsageError(f"--verify-signature {policy}: a policy.json is a JSON object")
    return document


def transport_of(reference: str) -> str:
    """`dir` for `dir:/path`, `docker` for `docker://name`: the policy's `transports` key."""
    return reference.partition(":")[0]


def trusted_key_fingerprints(policy: dict[str, Any], transport: str) -> list[str]:
    """The fingerprints of the GPG keys the policy's `signedBy` requirements trust for `transport` (every scope
    of it, else the default): the keys one of which signed a verified image. Empty when none can be read."""
    scopes = (policy.get("transports") or {}).get(transport) or {}
    requirements = [r for scope in scopes.values() for r in scope] if scopes else policy.get("default") or []
    fingerprints: list[str] = []
    for requirement in requirements:
        if isinstance(requirement, dict) and requirement.get("type") == "signedBy":
            for key in _key_material(requirement):
                fingerprints += [f for f in _fingerprints(key) if f not in fingerprints]
    return fingerprints


def _key_material(requirement: dict[str, Any]) -> list[bytes]:
    """The key files' contents of one signedBy requirement (keyPath, keyPaths, keyData); unreadable ones left out."""
    paths = [requirement.get("keyPath"), *(requirement.get("keyPaths") or [])]
    keys = []
    for path in filter(None, paths):
        try:
            keys.append(Path(path).read_bytes())
        except OSError:  # skopeo then rejects and says so
            continue
    if requirement.get("keyData"):
        with contextlib.suppress(ValueError):  # not base64: skopeo then rejects and says so
            keys.append(base64.b64decode(requirement["keyData"]))
    return keys


def _fingerprints(key: bytes) -> list[str]:
    """The primary keys' fingerprints in an OpenPGP key file, read by gpg in a throwaway home (the user's
    keyring is neither read nor changed)."""
    if shutil.which(GPG) is None:
        return []
    with tempfile.TemporaryDirectory(prefix="envcheck-gpg-") as home:
        try:
            shown = subprocess.run([GPG, "--batch", "--with-colons", "--show-keys"], input=key, capture_output=True,
                                   timeout=30, env={**os.environ, "GNUPGHOME": home}, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return []
    records = [line.split(":") for line in shown.stdout.decode("utf-8", "replace").splitlines()]
    # A `fpr` record follows the key it belongs to: keep those of `pub` (primary) keys, not of subkeys.
    return [fields[9] for before, fields in itertools.pairwise(records)
            if before[0] == "pub" and fields[0] == "fpr" and len(fields) > 9]


def skopeo_error(stderr: str) -> str:
    """skopeo's reason in one line: its fatal message, a gpgme struct dump replaced by the key that signed."""
    found = FATAL_MESSAGE.findall(stderr)
    text = found[-1].replace('\\"', '"') if found else (stderr.strip().splitlines() or ["skopeo failed"])[-1]
    text = GPGME_DUMP.sub(lambda m: f"signed by key {m[1].upper()}, which no key of the policy verifies", text)
    return " ".join(text.split())[:ERROR_CHARS]


def _not_this_image(manifest: bytes, manifest_digest: str, image_id: str, repo_digests: list[str]) -> str | None:
    """None when the verified manifest is the image the daemon runs, else why not (a signed other image)."""
    try:
        config = json.loads(manifest).get("config", {}).get("digest")
    except (ValueError, AttributeError):
        config = None
    digests = {digest.rpartition("@")[2] for digest in repo_digests}
    if image_id in (config, manifest_digest) or manifest_digest in digests:
        return None
    return (f"the signed image is not the one the daemon runs: signed manifest {manifest_digest} (config {config}), "
            f"image {image_id} ({', '.join(repo_digests) or 'no repository digest'})")
