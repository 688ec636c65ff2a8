"""`envcheck kit k8s`: Kubernetes manifests that run the on-site kit inside the production image, unchanged.

The kit travels in a ConfigMap (binaryData) mounted read-only into the pod, so the image is used exactly as
production pulls it; the capture comes back in the pod's log (`--out log:`: base64 lines between BEGIN/END
markers, which `envcheck kit collect` checks and unpacks). Printed, in the order `kubectl create -f -` needs:

    ConfigMap       the kit, named after its sha256 (immutable: a kit is never edited in place)
    NetworkPolicy   no ingress, no egress for the kit's pods (the kit needs no network)
    Job | Pod | DaemonSet
                    one run (Job, or a bare Pod: what `podman kube play` runs), or one pod per node of a
                    pool (DaemonSet: its pod must stay Running, so after the kit the container waits,
                    with the image's own Python, until the DaemonSet is deleted)

Each pod runs without privileges: no privilege escalation, every capability dropped, a read-only root with
an emptyDir for TMPDIR, the default seccomp profile, no service-account token. It does not force a non-root
user: the kit measures the image as it runs in production, whose user may be root.

The manifests are JSON documents separated by `---` lines: a YAML stream (JSON is YAML) that kubectl and
`podman kube play` read, printed without a YAML library (envcheck does not depend on one).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

from envcheck.errors import UsageError

Kind = Literal["job", "pod", "daemonset"]
KINDS: tuple[Kind, ...] = ("job", "pod", "daemonset")
MAX_CONFIGMAP_BYTES = 1024 * 1024
"""What the API server lets a ConfigMap's data and binaryData hold together, counted decoded (Kubernetes'
MaxSecretSize, which ValidateConfigMap applies); the base64 in the manifest is a third larger."""
KIT_KEY = "envcheck-kit.pyz"
KIT_MOUNT = "/envcheck-kit"
TEMP_MOUNT = "/tmp"
CONTAINER = "envcheck-kit"
NAME_LABEL, INSTANCE_LABEL = "app.kubernetes.io/name", "app.kubernetes.io/instance"
NODE_NAME_VARIABLE = "NODE_NAME"
GPU_RESOURCE = "nvidia.com/gpu"
HOLD_OPEN = ("import signal, subprocess, sys\n"
             "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
             "code = subprocess.call([sys.executable] + sys.argv[1:])\n"
             "sys.stderr.write('envcheck kit exited %d; this pod waits until its DaemonSet is deleted\\n' % code)\n"
             "signal.pause()\n")
"""A DaemonSet's container after the kit: its pod must stay Running (or the DaemonSet restarts it and runs the
kit again), and the image's own Python is the one program it surely has. SIGTERM ends it at once."""
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class KitManifests:
    """What to print: how to run one kit in one image."""

    kit: bytes
    """The kit's bytes (envcheck kit build)."""
    image: str
    """The production image, run as it is."""
    kind: Kind = "job"
    nodes: dict[str, str] = field(default_factory=dict)
    """nodeSelector: the node labels a pod may run on."""
    gpus: int | None = None
    """nvidia.com/gpu limit per pod."""
    site: str | None = None
    """Recorded in each capture (a DaemonSet's adds the node's name)."""
    python: str = "python3"
    """The interpreter production uses in the image."""

    @property
    def name(self) -> str:
        """Every object's name: the kit's own (its sha256), so two kits never overwrite each other."""
        return f"envcheck-kit-{self.kit_sha256[:12]}"

    @property
    def kit_sha256(self) -> str:
        """The kit's sha256 (what a technician checks before running it; here, part of every name)."""
        return hashlib.sha256(self.kit).hexdigest()


def read_kit(data: bytes, source: str) -> bytes:
    """`data` if it is a kit (a zipapp with kit.json); a UsageError naming `source` otherwise."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        names = set()
    if not {"__main__.py", "kit.json"} <= names:
        raise UsageError(f"--kit {source}: not an envcheck kit (build one with `envcheck kit build`)")
    return data


def refuse_past_configmap(size: int) -> None:
    """A UsageError for a kit of `size` bytes that no ConfigMap can hold, naming the way around."""
    if size > MAX_CONFIGMAP_BYTES:
        raise UsageError(f"the kit is {size / 1024:.0f} KiB, past the {MAX_CONFIGMAP_BYTES // 1024} KiB a ConfigMap "
                         "may hold: deliver it from an image of its own instead (docs/kit-kubernetes.md, \"A kit "
                         "past 1 MiB\")")


def parse_node_selector(text: str) -> dict[str, str]:
    """`KEY=VALUE[,KEY=VALUE…]` as Kubernetes node labels (a UsageError for what a nodeSelector cannot hold)."""
    selector = {}
    for pair in text.split(","):
        key, equals, value = pair.strip().partition("=")
        if not equals or not _is_label_key(key) or not (value == "" or _LABEL_NAME.fullmatch(value)):
            raise UsageError(f"--nodes {text!r}: expected KEY=VALUE node labels, e.g. "
                             "nvidia.com/gpu.present=true (keys [prefix/]name, values of up to 63 letters, digits, "
                             "'-', '_', '.')")
        selector[key] = value
    return selector


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    return bool(_LABEL_NAME.fullmatch(name)) and (not slash or bool(_DNS_SUBDOMAIN.fullmatch(prefix)))


def manifests(spec: KitManifests) -> list[dict[str, Any]]:
    """The ConfigMap, the NetworkPolicy and the workload, in the order they must be created."""
    refuse_past_configmap(len(spec.kit))
    return [_config_map(spec), _network_policy(spec), _workload(spec)]


def render(documents: list[dict[str, Any]]) -> str:
    """A YAML stream of JSON documents (kubectl and podman read JSON as YAML)."""
    return "\n---\n".join(json.dumps(document, indent=2) for document in documents)


def _metadata(spec: KitManifests) -> dict[str, Any]:
    # NOTE: no annotation carries the kit's whole sha256: podman 4.3's kube play holds annotation values to a
    # label's 63 characters and refuses the manifest; the name carries its first 12 digits.
    return {"name": spec.name, "labels": _labels(spec)}


def _labels(spec: KitManifests) -> dict[str, str]:
    return {NAME_LABEL: "envcheck-kit", INSTANCE_LABEL: spec.name}


def _config_map(spec: KitManifests) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(spec), "immutable": True,
            "binaryData": {KIT_KEY: base64.b64encode(spec.kit).decode("ascii")}}


def _network_policy(spec: KitManifests) -> dict[str, Any]:
    """Selected, with no rule: no traffic in or out (where the cluster's network plugin enforces policies)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _metadata(spec),
            "spec": {"podSelector": {"matchLabels": _labels(spec)}, "policyTypes": ["Ingress", "Egress"]}}


def _workload(spec: KitManifests) -> dict[str, Any]:
    pod = _pod_spec(spec)
    template = {"metadata": {"labels": _labels(spec)}, "spec": pod}
    if spec.kind == "pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(spec), "spec": pod}
    if spec.kind == "job":
        # backoffLimit 0: a probe that fails is an answer (its capture says why), not something to retry.
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(spec),
                "spec": {"backoffLimit": 0, "template": template}}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _metadata(spec),
            "spec": {"selector": {"matchLabels": _labels(spec)}, "template": template}}


def _pod_spec(spec: KitManifests) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Always" if spec.kind == "daemonset" else "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(spec)],
        "volumes": [{"name": "kit", "configMap": {"name": spec.name, "defaultMode": 0o444,
                                                  "items": [{"key": KIT_KEY, "path": KIT_KEY}]}},
                    {"name": "tmp", "emptyDir": {}}],
    }
    if spec.nodes:
        pod["nodeSelector"] = dict(spec.nodes)
    return pod


def _container(spec: KitManifests) -> dict[str, Any]:
    kit_command = [f"{KIT_MOUNT}/{KIT_KEY}", "--out", "log:", *_site_arguments(spec)]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        # Never pull a newer image than the one production runs (`:latest` would otherwise mean Always).
        "imagePullPolicy": "IfNotPresent",
        "command": [spec.python, "-c", HOLD_OPEN, *kit_command] if spec.kind == "daemonset"
        else [spec.python, *kit_command],
        "env": [{"name": "TMPDIR", "value": TEMP_MOUNT}],
        "volumeMounts": [{"name": "kit", "mountPath": KIT_MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": TEMP_MOUNT}],
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if spec.kind == "daemonset":
        container["env"].append({"name": NODE_NAME_VARIABLE,
                                 "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    if spec.gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(spec.gpus)}}
    return container


def _site_arguments(spec: KitManifests) -> list[str]:
    """--site for the kit. The kubelet expands $(VAR) in a command, so a `$` of the site is written `$$`; a
    DaemonSet's pods each add their node's name, so the captures of a pool tell their nodes apart."""
    site = None if spec.site is None else spec.site.replace("$", "$$")
    if spec.kind == "daemonset":
        node = f"$({NODE_NAME_VARIABLE})"
        site = node if site is None else f"{site}/{node}"
    return [] if site is None else ["--site", site]
