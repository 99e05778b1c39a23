"""Regenerate lbipam/apiserver/kinds/data/kubernetes-1.32-types.json from Kubernetes' own sources.

The embedded server decodes protobuf bodies and writes objects the way the real server's Go types
marshal to JSON. Both need facts the Kubernetes sources hold: the protobuf messages (field numbers
and types, from each package's `generated.proto`) and the Go struct tags (JSON names, `omitempty`,
pointers, `inline`, from `types.go`). This script joins them for the messages the embedded server's
kinds reach and writes one JSON file, one field per line.

Sources, at the tags matching the kubectl the tests use (v1.32):
    k8s.io/api v0.32.4                      core/v1, discovery/v1, coordination/v1, events/v1
    k8s.io/apimachinery v0.32.4             pkg/apis/meta/v1, pkg/runtime, pkg/runtime/schema,
                                            pkg/util/intstr, pkg/api/resource
    k8s.io/apiextensions-apiserver v0.32.4  pkg/apis/apiextensions/v1

Run (needs grpcio-tools for protoc, and the three repositories checked out at those tags under one
directory laid out as the Go import paths, e.g. SRC/k8s.io/api/core/v1/generated.proto):
    python tests/data/k8s-types/generate.py SRC
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "lbipam" / "apiserver" / "kinds" / "data" / "kubernetes-1.32-types.json"
PACKAGES = {
    "k8s.io/api/core/v1": ("types.go",),
    "k8s.io/api/discovery/v1": ("types.go",),
    "k8s.io/api/coordination/v1": ("types.go",),
    "k8s.io/api/events/v1": ("types.go",),
    "k8s.io/apimachinery/pkg/apis/meta/v1": ("types.go",),
    "k8s.io/apimachinery/pkg/runtime": (),
    "k8s.io/apimachinery/pkg/runtime/schema": (),
    "k8s.io/apimachinery/pkg/util/intstr": (),
    "k8s.io/apimachinery/pkg/api/resource": (),
    "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1": ("types.go", "types_jsonschema.go"),
}
# What a request body can be: the served kinds, DeleteOptions, and the envelope around them.
ROOTS = (
    "k8s.io.api.core.v1.Namespace",
    "k8s.io.api.core.v1.Node",
    "k8s.io.api.core.v1.Service",
    "k8s.io.api.core.v1.Secret",
    "k8s.io.api.core.v1.ConfigMap",
    "k8s.io.api.core.v1.Event",
    "k8s.io.api.discovery.v1.EndpointSlice",
    "k8s.io.api.coordination.v1.Lease",
    "k8s.io.api.events.v1.Event",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "k8s.io.apimachinery.pkg.runtime.Unknown",
)
_TYPES = {v: k.removeprefix("TYPE_").lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
_FIELD = re.compile(r"^\s+(?:(\w+)\s+)?(\S+)\s+`(.*)`")
_STRUCT = re.compile(r"^type (\w+) struct \{")


def descriptors(src: Path) -> descriptor_pb2.FileDescriptorSet:
    protos = [f"{pkg}/generated.proto" for pkg in PACKAGES]
    include = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{src}",
                f"-I{include}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                *protos,
            ],
            check=True,
        )
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def go_tags(src: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """message full name -> field number -> {json, pointer, omitempty, inline}, from the Go structs."""
    facts: dict[str, dict[int, dict[str, Any]]] = {}
    for pkg, files in PACKAGES.items():
        prefix = pkg.replace("/", ".").replace("-", "_") + "."
        for name in files:
            struct = None
            for line in (src / pkg / name).read_text().splitlines():
                if started := _STRUCT.match(line):
                    struct = prefix + started.group(1)
                    continue
                if line.startswith("}"):
                    struct = None
                field = _FIELD.match(line) if struct else None
                if struct is None or field is None:
                    continue
                tags = dict(re.findall(r'(\w+):"([^"]*)"', field.group(3)))
                if "protobuf" not in tags:
                    continue
                json_tag = tags.get("json", "").split(",")
                number = int(tags["protobuf"].split(",")[1])
                facts.setdefault(struct, {})[number] = {
                    "json": json_tag[0],
                    "pointer": field.group(2).startswith("*"),
                    "omitempty": "omitempty" in json_tag[1:],
                    "inline": "inline" in json_tag[1:],
                }
    return facts


def reachable(files: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.DescriptorProto]:
    every = {}
    for file in files.file:
        for message in file.message_type:
            every[f"{file.package}.{message.name}"] = message
    seen: dict[str, descriptor_pb2.DescriptorProto] = {}
    frontier = list(ROOTS)
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen[name] = every[name]
        for message in (every[name], *every[name].nested_type):
            frontier += [f.type_name[1:] for f in message.field if f.type_name and f.type_name[1:] in every]
    return seen


def field_type(field: descriptor_pb2.FieldDescriptorProto, message: descriptor_pb2.DescriptorProto) -> str:
    if not field.type_name:
        return _TYPES[field.type]
    entry = next((n for n in message.nested_type if field.type_name.endswith("." + n.name)), None)
    if entry is not None and entry.options.map_entry:
        key, value = entry.field
        return f"map<{field_type(key, entry)},{field_type(value, entry)}>"
    return field.type_name[1:]


def build(src: Path) -> dict[str, Any]:
    facts = go_tags(src)
    messages: dict[str, list[dict[str, Any]]] = {}
    for name, message in sorted(reachable(descriptors(src)).items()):
        fields = []
        for field in sorted(message.field, key=lambda f: f.number):
            kind = field_type(field, message)
            go = facts.get(name, {}).get(field.number, {})
            entry: dict[str, Any] = {"n": field.number, "name": field.name, "type": kind}
            if field.label == field.LABEL_REPEATED and not kind.startswith("map<"):
                entry["repeated"] = True
            if go:
                entry["json"] = go["json"]
                for flag in ("pointer", "inline"):
                    if go[flag]:
                        entry[flag] = True
                if not go["omitempty"]:
                    entry["always"] = True  # no omitempty: Go writes the zero value
            fields.append(entry)
        messages[name] = fields
    return {"source": __doc__.split("Sources, ")[1].split("\n\nRun")[0], "messages": messages}


def dump(data: dict[str, Any]) -> str:
    lines = ["{", f'"source": {json.dumps(data["source"])},', '"messages": {']
    names = list(data["messages"])
    for index, name in enumerate(names):
        lines.append(f"{json.dumps(name)}: [")
        fields = data["messages"][name]
        lines += [json.dumps(f) + ("," if i < len(fields) - 1 else "") for i, f in enumerate(fields)]
        lines.append("]" + ("," if index < len(names) - 1 else ""))
    lines += ["}", "}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(dump(build(Path(sys.argv[1]))))
    print(f"wrote {OUT.relative_to(ROOT)}")
