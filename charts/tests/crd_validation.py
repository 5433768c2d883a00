"""PeerGroups judged by our CRD's own schema, as the API server would judge a create.

Structure, patterns and bounds with jsonschema (unknown fields refused, as `kubectl apply`'s
strict field validation does), then the schema's defaults, then every
`x-kubernetes-validations` CEL rule (cel-python) on the defaulted object.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import celpy
import jsonschema


def open_api_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} serves no version {version}")


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 -> JSON Schema: `nullable` becomes a null type; objects that neither declare
    `additionalProperties` nor preserve unknown fields refuse unknown ones."""
    s = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if s.get("nullable") and "type" in s:
        s["type"] = [s["type"], "null"]
    s.pop("nullable", None)
    open_ = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if s.get("type") == "object" and "properties" in s and not open_:
        s["additionalProperties"] = False
    if "properties" in s:
        s["properties"] = {k: _strict(v) for k, v in s["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            s[key] = _strict(s[key])
    return s


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """The API server's defaulting: a missing property with a `default` gets it, recursively."""
    if isinstance(value, dict):
        out = dict(value)
        for name, prop in schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = copy.deepcopy(prop["default"])
            if name in out:
                out[name] = _apply_defaults(prop, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out:
                if name not in schema.get("properties", {}):
                    out[name] = _apply_defaults(extra, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_apply_defaults(schema["items"], v) for v in value]
    return value


def _rule_sites(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict, Any]]:
    """(path, rule, self) for every CEL rule that applies to a node present in `value`."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in value and value[name] is not None:
                yield from _rule_sites(prop, value[name], f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _rule_sites(schema["items"], item, f"{path}[{i}]")


class CrdValidator:
    """Validates objects of one CRD version."""

    def __init__(self, crd: dict[str, Any], version: str):
        self.kind = crd["spec"]["names"]["kind"]
        self.api_version = f"{crd['spec']['group']}/{version}"
        self.schema = open_api_schema(crd, version)
        root = _strict(self.schema)
        # The API server knows apiVersion, kind and metadata without the CRD declaring them.
        root["properties"]["apiVersion"] = {"const": self.api_version}
        root["properties"]["kind"] = {"const": self.kind}
        root["properties"]["metadata"] = {"type": "object"}
        root["required"] = sorted(set(root.get("required", [])) | {"apiVersion", "kind", "metadata"})
        self.structural = jsonschema.Draft4Validator(root)
        self.cel = celpy.Environment()
        self.programs: dict[str, Any] = {}

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Every reason the API server would refuse `obj`; empty when it would accept it."""
        found = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in self.structural.iter_errors(obj)
        ]
        if found:
            return found
        defaulted = _apply_defaults(self.schema, obj)
        for path, rule, node in _rule_sites(self.schema, defaulted, "self"):
            text = rule["rule"]
            if text not in self.programs:
                self.programs[text] = self.cel.program(self.cel.compile(text))
            result = self.programs[text].evaluate({"self": celpy.json_to_cel(node)})
            if not isinstance(result, celpy.celtypes.BoolType):
                found.append(f"{path}: rule {text!r} did not evaluate to a bool: {result!r}")
            elif not result:
                found.append(f"{path}: {rule.get('message', text)}")
        return found

    def rule_count(self) -> int:
        return sum(1 for _ in _all_rules(self.schema))


def _all_rules(schema: dict[str, Any]) -> Iterator[dict]:
    yield from schema.get("x-kubernetes-validations", [])
    for prop in schema.get("properties", {}).values():
        yield from _all_rules(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _all_rules(schema[key])
