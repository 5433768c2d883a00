"""Rendering the chart with Helm's own engine, and judging objects by the schemas that apply.

* built-in kinds: the Kubernetes OpenAPI schemas (kubernetes-validate, strict);
* PeerGroups: our CRD (crd_validation.CrdValidator);
* ServiceMonitor: no Kubernetes schema exists and the Prometheus Operator's CRD is not
  available offline, so a strict schema of the fields the chart uses, written from the
  Prometheus Operator API reference (monitoring.coreos.com/v1), plus ObjectMeta checked by the
  Kubernetes schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

from crd_validation import CrdValidator

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "haproxy-peers"
CRD_FILE = REPO / "crds" / "peergroups.yaml"
RELEASE = "hp"
RELEASE_NAMESPACE = "haproxy-peers"
# The oldest Kubernetes the chart supports and a current one.
KUBE_VERSIONS = ("1.26.0", "1.33.0")

_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$"}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                        },
                    },
                },
            },
        },
    },
}


def peer_group_validator() -> CrdValidator:
    return CrdValidator(yaml.safe_load(CRD_FILE.read_text()), "v1alpha1")


def load_values(path: Path | None) -> dict[str, Any]:
    """A values file parsed by Helm itself (the `-f` input)."""
    return {} if path is None else helm.values_from_yaml(path.read_text())


def render(values: dict[str, Any]) -> dict[str, str]:
    """Template path -> rendered text, as `helm template hp charts/haproxy-peers -n haproxy-peers`."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a render (NOTES.txt is text for the user, not an object)."""
    found = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__source__", path)
                found.append(doc)
    return found


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__source__"}


def problems(obj: dict[str, Any], versions: tuple[str, ...], peer_groups: CrdValidator) -> list[str]:
    """Why the API server (of each version) would refuse `obj`; empty when all accept it."""
    obj = strip(obj)
    kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
    where = f"{kind} {name}"
    if kind == peer_groups.kind and obj.get("apiVersion") == peer_groups.api_version:
        found = [f"{where}: {e}" for e in peer_groups.errors(obj)]
        return found + _metadata_problems(obj, versions, where)
    if kind == "ServiceMonitor":
        validator = jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA)
        found = [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                 for e in validator.iter_errors(obj)]
        return found + _metadata_problems(obj, versions, where)
    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            found.append(f"{where} (Kubernetes {version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            found.append(f"{where}: no Kubernetes {version} schema for it: {e.message}")
    return found


def _metadata_problems(obj: dict[str, Any], versions: tuple[str, ...], where: str) -> list[str]:
    """A custom resource's metadata, judged as any object's ObjectMeta."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(probe, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            found.append(f"{where} metadata (Kubernetes {version}): {e.message}")
    return found
