"""The generated CRDs: no drift from the models, structural, and they agree with the models.

Every example manifest must pass both the CRD schema and the pydantic model; every deliberately
bad manifest must fail the model, and the schema too where its `# schema: rejects` header says
the schema can express the rule (`# schema: model-only` says it cannot).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pydantic
import pytest
import yaml

from lbipam.api import GROUP, parse_resource
from lbipam.api.common import describe_errors
from lbipam.api.crdgen import crd_dicts, crd_filename, render_crd_yaml
from lbipam.api.schemacheck import crd_schema, schema_errors, structural_problems

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
EXAMPLES = sorted((ROOT / "lbipam" / "examples").glob("*.yaml"))  # deploy/examples/ holds copies
BAD_MANIFESTS = sorted((ROOT / "tests" / "data" / "bad-manifests").glob("*.yaml"))
REGENERATE = (
    "regenerate with: python -c 'from lbipam.api.crdgen import write_crds; write_crds(\"crds\")' "
    "(`lbipam crds` prints the same YAML)"
)
CRDS = crd_dicts()
SCHEMAS = {crd["spec"]["names"]["kind"]: crd_schema(crd) for crd in CRDS}


def committed_crds() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(CRD_DIR.glob(f"{GROUP}_*.yaml"))}


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def test_committed_crds_match_the_models() -> None:
    expected = {crd_filename(crd): render_crd_yaml(crd) for crd in CRDS}
    committed = committed_crds()
    assert sorted(committed) == sorted(expected), f"crds/ has other files than expected; {REGENERATE}"
    for name, text in expected.items():
        assert committed[name] == text, f"crds/{name} drifted from the models; {REGENERATE}"


def test_lbipam_crds_prints_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lbipam", "crds"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout == "".join(f"---\n{text}" for text in committed_crds().values())
    assert [doc["metadata"]["name"] for doc in yaml.safe_load_all(result.stdout)] == [
        "bgpadvertisements.lbipam.io",
        "bgpnodestates.lbipam.io",
        "bgppeers.lbipam.io",
        "loadbalancerippools.lbipam.io",
        "podcidrpools.lbipam.io",
    ]


@pytest.mark.parametrize("crd", CRDS, ids=lambda crd: crd["spec"]["names"]["kind"])
def test_crd_is_structural_and_complete(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    (version,) = spec["versions"]
    assert structural_problems(crd_schema(crd)) == []
    assert "$ref" not in json.dumps(crd)
    assert spec["group"] == GROUP
    assert spec["scope"] == "Cluster"
    assert spec["names"]["categories"] == ["lbipam"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{GROUP}"
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert columns, "printer columns"
    assert all(c["jsonPath"].startswith(".") for c in columns)
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    properties = version["schema"]["openAPIV3Schema"]["properties"]
    assert properties["metadata"] == {"type": "object"}
    assert "status" in properties


@pytest.mark.parametrize("crd", CRDS, ids=lambda crd: crd["spec"]["names"]["kind"])
def test_crd_is_a_valid_apiextensions_object(crd: dict[str, Any]) -> None:
    # The published OpenAPI schema of apiextensions.k8s.io/v1 (no structural rules, those above).
    kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        pytest.param({"properties": {"a": {"type": "string"}}}, "(root): no type", id="no-type"),
        pytest.param({"type": "object", "$ref": "#/x"}, "$ref", id="ref"),
        pytest.param(
            {"type": "object", "properties": {}, "additionalProperties": False},
            "additionalProperties",
            id="additionalProperties-false",
        ),
        pytest.param({"type": "string", "pattern": r"^a\Z"}, "RE2", id="pattern-backslash-Z"),
        pytest.param({"type": "string", "pattern": "^(?!a)"}, "RE2", id="pattern-lookahead"),
        pytest.param(
            {"type": "string", "anyOf": [{"type": "string"}]}, "type is not allowed", id="type-in-anyOf"
        ),
        pytest.param({"type": "array", "uniqueItems": True}, "uniqueItems", id="uniqueItems"),
    ],
)
def test_structural_check_catches(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in structural_problems(schema))


EXAMPLE_DOCS = [(path, doc) for path in EXAMPLES for doc in load_all(path)]
EXAMPLE_OBJECTS = [
    pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}") for path, doc in EXAMPLE_DOCS
]


def test_examples_exist() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLE_DOCS}
    assert kinds >= {"LoadBalancerIPPool", "PodCIDRPool", "BGPPeer", "BGPAdvertisement"}


@pytest.mark.parametrize("doc", EXAMPLE_OBJECTS)
def test_example_passes_schema_and_model(doc: dict[str, Any]) -> None:
    if doc["kind"] not in SCHEMAS:  # the demo's Nodes, Services, EndpointSlices: Kubernetes' schemas
        kubernetes_validate.validate(doc, "1.32", strict=True)
        return
    assert schema_errors(doc, SCHEMAS[doc["kind"]]) == []
    model = parse_resource(doc)
    wire = model.to_wire()
    assert type(model).model_validate(wire) == model
    assert schema_errors(wire, SCHEMAS[doc["kind"]]) == [], "defaults filled in by the model"


def read_bad_manifest(path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The object, its `# schema:` marker, and its `# expect:` substrings."""
    header = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    schema = [line.split(":", 1)[1].strip() for line in header if line.startswith("# schema:")]
    expects = [line.split(":", 1)[1].strip() for line in header if line.startswith("# expect:")]
    assert schema in (["rejects"], ["model-only"]), f"{path.name}: needs one '# schema:' line"
    assert expects, f"{path.name}: needs '# expect:' lines"
    (doc,) = load_all(path)
    return doc, schema[0], expects


def test_bad_manifests_exist() -> None:
    assert len(BAD_MANIFESTS) >= 10


@pytest.mark.parametrize("path", BAD_MANIFESTS, ids=lambda p: p.stem)
def test_bad_manifest_is_rejected(path: Path) -> None:
    doc, schema, expects = read_bad_manifest(path)
    with pytest.raises(pydantic.ValidationError) as info:
        parse_resource(doc)
    message = "\n".join(describe_errors(info.value))
    for expected in expects:
        assert expected in message
    errors = schema_errors(doc, SCHEMAS[doc["kind"]])
    if schema == "rejects":
        assert errors, f"{path.name}: the CRD schema accepts it"
    else:
        assert errors == [], f"{path.name}: the schema rejects it: mark it '# schema: rejects'"


@pytest.mark.parametrize(
    ("fmt", "value", "valid"),
    [
        pytest.param("cidr", "192.0.2.0/24", True, id="cidr"),
        pytest.param("cidr", "192.0.2.1/24", True, id="cidr-host-bits-as-kubernetes"),
        pytest.param("cidr", "192.0.2.0/33", False, id="cidr-long-prefix"),
        pytest.param("cidr", "192.0.2.0", False, id="cidr-no-prefix"),
        pytest.param("ipv4", "192.0.2.1", True, id="ipv4"),
        pytest.param("ipv4", "2001:db8::1", False, id="ipv4-given-ipv6"),
        pytest.param("ipv6", "2001:db8::1", True, id="ipv6"),
        pytest.param("ipv6", "192.0.2.1", False, id="ipv6-given-ipv4"),
    ],
)
def test_schema_formats(fmt: str, value: str, valid: bool) -> None:
    assert (schema_errors(value, {"type": "string", "format": fmt}) == []) is valid


def test_the_readme_carries_the_generated_field_reference() -> None:
    from lbipam.api.reference import END, START, reference

    text = (ROOT / "README.md").read_text()
    assert START in text, "README.md lost its crd-reference start marker"
    assert END in text, "README.md lost its crd-reference end marker"
    shown = text.split(START, 1)[1].split(END, 1)[0]
    assert shown.strip() == reference().strip(), (
        "README.md's field reference drifted from the models: "
        "paste `lbipam crds --reference` between the markers"
    )
