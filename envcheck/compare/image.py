"""The same tag is not the same image: a Docker target whose tag now names another image than the one the
golden was made in gets the finding image-differs-from-golden (a rebuilt image under an old tag is the
commonest way a factory runs something nobody checked)."""
from __future__ import annotations

from typing import Any

from envcheck.model import IMAGE_DIFFERS_FROM_GOLDEN as CODE
from envcheck.model import Finding


def image_findings(target_info: dict[str, Any], reference_image: dict[str, Any] | None) -> tuple[Finding, ...]:
    """The finding when the target's image reference is the golden's (by tag) but its image id is another."""
    image = target_info.get("image") if target_info.get("kind") == "docker" else None
    if not reference_image or not isinstance(image, dict) or not image.get("id"):
        return ()
    ref = str(target_info.get("image_ref") or "")
    same_tag = ref == reference_image.get("ref") or _tagged(ref) in (reference_image.get("tags") or [])
    if not same_tag or image["id"] == reference_image.get("id"):
        return ()
    return (Finding(
        code=CODE, severity="warn",
        message=(f"{ref} is image {_short(image['id'])} here ({_digests(image.get('repo_digests'))}), but the golden "
                 f"was made in {_short(reference_image.get('id'))} ({_digests(reference_image.get('repo_digests'))}) "
                 "under that tag"),
        hint="The tag was rebuilt or moved since the golden was made: pin images by digest, or make the golden "
             "again from the image the factories run."),)


def _tagged(ref: str) -> str:
    """`name` as Docker lists it among an image's tags: `name:latest`."""
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in ref else f"{ref}:latest"


def _short(image_id: Any) -> str:
    return str(image_id).removeprefix("sha256:")[:12]


def _digests(digests: Any) -> str:
    return ", ".join(str(d) for d in digests) if digests else "no repository digest"
