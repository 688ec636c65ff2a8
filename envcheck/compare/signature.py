"""A Docker target checked with `--verify-signature` whose image could not be verified as signed by a key the
policy trusts (targets/provenance.py records why in the target info's `signature`) gets the finding
image-signature-unverified, at severity fail: a gate that asked for a signature must not pass an unsigned image,
nor a signed image other than the one it ran."""
from __future__ import annotations

from typing import Any

from envcheck.model import Finding

CODE = "image-signature-unverified"


def signature_findings(target_info: dict[str, Any]) -> tuple[Finding, ...]:
    """The finding when the target's signature was asked for and not verified; none when not asked for."""
    signature = target_info.get("signature")
    if not isinstance(signature, dict) or signature.get("verified") is True:
        return ()
    return (Finding(
        code=CODE, severity="fail",
        message=(f"the signature of {target_info.get('image_ref')} was not verified at {signature.get('reference')} "
                 f"against {signature.get('policy')}: {signature.get('error') or 'no reason given'}"),
        hint="Sign the image the factories run with a key the policy trusts (skopeo copy --sign-by), and name where "
             "that signed image lives with --signed-ref when it is not the image's own reference."),)
