"""The SBOM (`--sbom PATH`, and one per target beside a kept report): a CycloneDX 1.6 JSON bill of materials of
every target's packages, for the tools that scan for CVEs (Trivy, Grype, Dependency-Track); envcheck itself scans
for none.

Rendered from the JSON report, never from a capture, so it holds exactly what the report holds and follows its
redaction: the hostname is the report's hashed one, a remote daemon's address is never named.

One file, one component tree per target (a `container` for an image, a `platform` for a host interpreter),
in the report's order. Inside each: the operating system, the Python interpreter, the Python distributions
(`pkg:pypi/tensorflow-cpu@2.21.0`), the Debian packages where the fingerprint lists them, and the native
libraries the probe found (CUDA, BLAS, OpenMP…). A package installed in two targets is two components, each
under its target, so a scanner's finding names the target it is in. A target that could not be probed has no
fingerprint and so no components: it is listed all the same, with its verdict, so the SBOM never looks
complete when it is not. render_target_sboms gives the same trees one per file (`--reports-dir`).

Deterministic: the timestamp is the report's, the serial number derived from the report itself.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from envcheck import __version__
from envcheck.fields import current_fingerprint

if TYPE_CHECKING:  # cyclonedx is imported only when an SBOM is written (`envcheck --help` stays instant)
    from cyclonedx.model.component import Component

SPEC_VERSION = "1.6"
"""CycloneDX 1.6: read by Trivy, Grype and Dependency-Track alike (1.7 is not yet, everywhere)."""
MAX_VERSION = 1024
"""CycloneDX 1.6's limit on a component's version: a longer one is no version (the SBOM would not validate)."""
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~:-]*")
"""A name or version as package managers write them (PEP 508 names, Debian's `1:2.36-9+deb12u4~1`)."""
PROPERTY = "envcheck:"
"""The namespace of envcheck's own properties (CycloneDX's property taxonomy: a tool's own prefix)."""
TARGET_SUFFIX = ".cdx"
"""A per-target SBOM's suffix (target_sbom_name)."""
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SLUG = 80


def render_sbom(document: dict[str, Any]) -> str:
    """The CycloneDX JSON text of a report dict made by report_to_dict (envcheck/report/json.py)."""
    return _render(document, list(enumerate(_targets(document))), _serial_number(document))


def render_target_sboms(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, CycloneDX JSON text) of one SBOM per target of the report, in the report's order: the files a
    kept report's `<report>.sbom/` folder holds (docs/sbom.md). Each is the target's tree of render_sbom, with its
    bom-refs (`target-N/…`) and a serial number of its own."""
    return [(target_sbom_name(index, target), _render(document, [(index, target)], _serial_number(document, index)))
            for index, target in enumerate(_targets(document))]


def warm_up() -> None:
    """Render a one-package SBOM and drop it: cyclonedx builds much of its machinery on first use (the CLI does
    this in the background while probes run, so that a report's own SBOMs cost only their rendering)."""
    render_sbom({"targets": [{"spec": "warm-up", "fingerprint": {"packages": {"envcheck": __version__}}}]})


def target_sbom_name(index: int, target: dict[str, Any]) -> str:
    """`target-0-docker_factory_vision_1.5.cdx`: the target's place in the report (two targets may share a spec)
    and its spec made a file name. Not `.json`: `envcheck review` of the reports folder reads every *.json as a
    report; scanners (Trivy, Grype, Dependency-Track) recognise CycloneDX by its content."""
    slug = UNSAFE_IN_NAME.sub("_", _text(target.get("spec")) or "").strip("_.")[:MAX_SLUG]
    return f"target-{index}-{slug}{TARGET_SUFFIX}" if slug else f"target-{index}{TARGET_SUFFIX}"


def _render(document: dict[str, Any], targets: list[tuple[int, dict[str, Any]]], serial_number: uuid.UUID) -> str:
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6

    envcheck = Component(type=ComponentType.APPLICATION, name="envcheck", version=__version__)
    metadata = BomMetaData(tools=ToolRepository(components=[envcheck]), timestamp=_timestamp(document),
                           properties=_properties(**{"golden-sha256": _golden_sha256(document)}))
    bom = Bom(serial_number=serial_number, metadata=metadata,
              components=[_target_component(index, target) for index, target in targets])
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    targets = document.get("targets")
    return [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []


def _target_component(index: int, target: dict[str, Any]) -> Component:
    """The target and, nested in it, everything its fingerprint lists."""
    from cyclonedx.model.component import Component, ComponentType

    info = _mapping(target.get("target"))
    image = _mapping(info.get("image"))
    fingerprint = _mapping(current_fingerprint(target.get("fingerprint")))
    prefix = f"target-{index}"  # bom-refs are unique in the whole file: the same package in two targets is two
    return Component(
        type=ComponentType.CONTAINER if info.get("kind") == "docker" else ComponentType.PLATFORM,
        bom_ref=prefix, name=_text(target.get("spec")) or prefix, version=_version(image.get("id")),
        properties=_properties(site=target.get("site"), verdict=target.get("verdict"),
                               hostname=_mapping(fingerprint.get("host")).get("hostname"),
                               **{"image-tag": image.get("tags"),
                                  "debian-packages-error": fingerprint.get("debian_packages_error")}),
        components=[*_operating_system(prefix, fingerprint), *_interpreter(prefix, fingerprint),
                    *_python_distributions(prefix, fingerprint), *_debian_packages(prefix, fingerprint),
                    *_native_libraries(prefix, fingerprint)],
    )


def _operating_system(prefix: str, fingerprint: dict[str, Any]) -> Iterator[Component]:
    """The distribution (what Trivy and Grype key Debian packages' vulnerabilities on), with its kernel."""
    from cyclonedx.model.component import Component, ComponentType

    system = _mapping(fingerprint.get("os"))
    release = _mapping(system.get("release"))
    name = _text(release.get("id"))
    if name:
        yield Component(type=ComponentType.OPERATING_SYSTEM, bom_ref=f"{prefix}/os", name=name,
                        version=_version(release.get("version_id")), description=_text(release.get("pretty_name")),
                        properties=_properties(kernel=system.get("kernel"), glibc=system.get("glibc")))


def _interpreter(prefix: str, fingerprint: dict[str, Any]) -> Iterator[Component]:
    """The Python interpreter; CPython with the CPE that vulnerability databases file it under."""
    from cyclonedx.model.component import Component, ComponentType

    python = _mapping(fingerprint.get("python"))
    implementation, version = _text(python.get("implementation")) or "Python", _version(python.get("version"))
    if version:
        cpe = f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*" if implementation == "CPython" else None
        yield Component(type=ComponentType.APPLICATION, bom_ref=f"{prefix}/python", name=implementation,
                        version=version, cpe=cpe, properties=_properties(executable=python.get("executable")))


def _python_distributions(prefix: str, fingerprint: dict[str, Any]) -> Iterator[Component]:
    """Every installed distribution, with its PyPI purl (`pkg:pypi/tensorflow-cpu@2.21.0`)."""
    from cyclonedx.model.component import Component

    for name, version in _versions(fingerprint.get("packages")):
        yield Component(bom_ref=f"{prefix}/pypi/{name}@{version}", name=name, version=version,
                        purl=_purl("pypi", name, version))


def _debian_packages(prefix: str, fingerprint: dict[str, Any]) -> Iterator[Component]:
    """Debian packages where the fingerprint lists them (`debian_packages`: {name: {version, architecture,
    source}}, from dpkg's status: the probe's debian.py), with the purl Trivy and Grype match
    (`pkg:deb/debian/libc6@2.36-9?…`). A package installed for two architectures is keyed `name:arch` there; its
    purl names the package, the architecture is its qualifier."""
    from cyclonedx.model.component import Component

    release = _mapping(_mapping(fingerprint.get("os")).get("release"))
    vendor, version_id = _text(release.get("id")) or "debian", _text(release.get("version_id"))
    for key, entry in _named(fingerprint.get("debian_packages")):
        package, name = _mapping(entry), key.partition(":")[0] or key
        version = _version(package.get("version"))
        if not version:
            continue
        qualifiers = {"arch": _text(package.get("architecture")), "upstream": _text(package.get("source")),
                      "distro": f"{vendor}-{version_id}" if version_id else None}
        yield Component(bom_ref=f"{prefix}/deb/{key}@{version}", name=name, version=version,
                        purl=_purl("deb", name, version, namespace=vendor, qualifiers=qualifiers))


def _native_libraries(prefix: str, fingerprint: dict[str, Any]) -> Iterator[Component]:
    """The native libraries the probe found: those loaded into the process (with kind and path) and the CUDA
    libraries the dynamic linker knows of. No package manager names them, so their purl is `generic`."""
    from cyclonedx.model.component import Component

    section = _mapping(fingerprint.get("native_libraries"))
    for name, version, details in _libraries(section):
        yield Component(bom_ref=f"{prefix}/native/{name}@{version or ''}", name=name, version=version,
                        purl=_purl("generic", name, version), properties=_properties(**details))


def _libraries(section: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(name, version, properties) once each: a loaded library is not listed again as installed."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for name, entry in _named(section.get("loaded")):
        library = _mapping(entry)
        found[(name, _version(library.get("version")))] = {"kind": library.get("kind"), "path": library.get("path"),
                                                           "loaded": "true"}
    for name, versions in _named(section.get("installed")):
        for version in filter(None, map(_version, versions if isinstance(versions, list) else [])):
            found.setdefault((name, version), {"loaded": "false"})
    return [(name, version, details) for (name, version), details in sorted(found.items(), key=lambda item: (
        item[0][0], item[0][1] or ""))]


def _purl(kind: str, name: str, version: str | None, namespace: str | None = None,
          qualifiers: dict[str, str | None] | None = None):
    """The package URL of a package whose every part is a plain identifier, else None: the component is still
    listed by name (a fingerprint is data; a name with a space or a lone surrogate cannot be made a purl)."""
    from packageurl import PackageURL

    parts = [name, version, namespace, *(qualifiers or {}).values()]
    if not all(part is None or PLAIN.fullmatch(part) for part in parts):
        return None
    return PackageURL(type=kind, namespace=namespace, name=name, version=version,
                      qualifiers={key: value for key, value in (qualifiers or {}).items() if value})


def _versions(packages: Any) -> list[tuple[str, str]]:
    """(name, version) of a `packages` section, sorted; entries that are not two strings are left out."""
    return [(name, version) for name, version in _named(packages) if _version(version)]


def _named(section: Any) -> list[tuple[str, Any]]:
    """The (name, value) entries of a section keyed by name, sorted; a key that is no name is left out."""
    return sorted(((name, value) for name, value in _mapping(section).items() if isinstance(name, str) and name),
                  key=lambda entry: entry[0])


def _properties(**values: Any):
    """`envcheck:NAME` properties of the values that are set (a list: one property per item, as CycloneDX does)."""
    from cyclonedx.model import Property

    properties = []
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, int, float)) and not isinstance(item, bool) and str(item):
                properties.append(Property(name=PROPERTY + name, value=str(item)))
    return properties


def _timestamp(document: dict[str, Any]) -> datetime | None:
    """The report's own time (`…Z`, which Python 3.10's fromisoformat does not read); None: the library's now."""
    created = document.get("created")
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    except ValueError:
        return None


def _serial_number(document: dict[str, Any], target: int | None = None) -> uuid.UUID:
    """A UUID of the report's content (and of the target, for a per-target SBOM): the same report gives the same
    SBOM, two reports or two targets two serial numbers."""
    digest = hashlib.sha256(json.dumps(document, default=str).encode()).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:envcheck:report:{digest}" + (f":target-{target}" if target is not None
                                                                              else ""))


def _golden_sha256(document: dict[str, Any]) -> Any:
    return _mapping(document.get("golden")).get("sha256")


def _mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a dict, else an empty one (a report read back is data: any section may be malformed)."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _version(value: Any) -> str | None:
    """A version CycloneDX can hold (at most 1024 characters since 1.6); None for anything else."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_VERSION else None
