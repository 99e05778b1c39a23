"""`lbipam migrate` against the projects' own manifests: every input file under
tests/data/migrate/<source>/input/ (MetalLB's and Cilium's documentation examples and samples,
and lbipam's own cases; tests/data/migrate/README.md names their sources) gives exactly the lbipam
YAML and the report in tests/data/migrate/<source>/golden/<name>.golden.

Regenerate the golden files after an intended change with LBIPAM_UPDATE_GOLDEN=1 (and read the diff).
Every lbipam object in a golden file also validates against lbipam's models and generated CRDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lbipam.api import API_VERSION, parse_resource
from lbipam.api.schemacheck import crd_schema, schema_errors
from lbipam.migrate import translate
from lbipam.migrate.output import documents, render_report, render_yaml

DATA = Path(__file__).parent / "data" / "migrate"
ROOT = Path(__file__).parent.parent
REPORT_MARK = "# ---- report (stderr) ----\n"
CASES = sorted(
    (source, path) for source in ("metallb", "cilium") for path in (DATA / source / "input").glob("*.yaml")
)


def golden_text(source: str, path: Path) -> str:
    report = translate(source, documents(path.read_text(), str(path)))
    exit_code = 0 if report.complete else 1
    lines = render_report(report).splitlines()
    tail = "".join(f"# {line}\n" for line in [*lines, f"exit code {exit_code}"])
    return render_yaml(report, source) + REPORT_MARK + tail


@pytest.mark.parametrize(("source", "path"), CASES, ids=[f"{s}/{p.stem}" for s, p in CASES])
def test_translation_matches_golden(source: str, path: Path) -> None:
    golden = DATA / source / "golden" / f"{path.stem}.golden"
    got = golden_text(source, path)
    if os.environ.get("LBIPAM_UPDATE_GOLDEN"):
        golden.write_text(got)
    assert golden.exists(), f"no golden file {golden}: run with LBIPAM_UPDATE_GOLDEN=1"
    assert got == golden.read_text(), f"{path.name}: output differs from {golden.name}"


def _crd_schemas() -> dict[str, object]:
    schemas = {}
    for crd_file in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(crd_file.read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd_schema(crd)
    return schemas


def test_every_golden_object_validates_against_models_and_crds() -> None:
    schemas = _crd_schemas()
    checked = 0
    for golden in sorted(DATA.glob("*/golden/*.golden")):
        for obj in yaml.safe_load_all(golden.read_text().split(REPORT_MARK)[0]):
            if not obj or obj.get("apiVersion") != API_VERSION:
                continue
            parse_resource(obj)
            assert schema_errors(obj, schemas[obj["kind"]]) == [], f"{golden.name}: {obj['metadata']['name']}"
            checked += 1
    assert checked > 50


def test_no_golden_file_without_its_input() -> None:
    for golden in DATA.glob("*/golden/*.golden"):
        assert (golden.parent.parent / "input" / f"{golden.stem}.yaml").exists(), golden
