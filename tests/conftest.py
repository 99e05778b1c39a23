"""Shared fixtures: an embedded API server per test, its kubeconfig, lbipam's CRDs applied to it,
the test's own client (`api`) and an LB-IPAM controller in this process (`ctl`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.helpers import eventually
from tests.lbipam_harness import Api, Running, controller
from tests.podcidr_harness import TARGETS, PCApi, api_for

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
async def apiserver() -> AsyncIterator[EmbeddedAPIServer]:
    """An embedded API server on a free port with an in-memory database, stopped after the test."""
    server = EmbeddedAPIServer(db=":memory:", port=0, bookmark_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def kubeconfig(apiserver: EmbeddedAPIServer, tmp_path: Path) -> Path:
    """A kubeconfig file for the `apiserver` fixture."""
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


def crd_documents() -> list[dict[str, Any]]:
    paths = sorted((ROOT / "crds").glob("*.yaml")) + sorted((ROOT / "crds" / "thirdparty").glob("*.yaml"))
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
async def lbipam_crds(apiserver: EmbeddedAPIServer) -> list[str]:
    """Apply every crds/*.yaml and crds/thirdparty/*.yaml over HTTP; wait until each is Established."""
    names = []
    async with apiserver.session() as session:
        for doc in crd_documents():
            async with session.post(
                CRD_PATH, data=json.dumps(doc), headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 201, await r.text()
            names.append(doc["metadata"]["name"])

        async def established() -> bool:
            for name in names:
                async with session.get(f"{CRD_PATH}/{name}") as r:
                    crd = await r.json()
                conditions = crd.get("status", {}).get("conditions", [])
                if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    return False
            return True

        await eventually(established, timeout=10)
    return names


# ---- LB-IPAM and PodCIDR scenario tests (tests/test_lbipam_*.py, tests/test_podcidr_*.py) --------
@pytest.fixture
async def api(kubeconfig: Path, lbipam_crds: list[str]) -> AsyncIterator[PCApi]:
    """The test's own client (tests/lbipam_harness.Api, with the PodCIDR objects' reads and writes
    of tests/podcidr_harness.PCApi), once the CRDs are in. Modules may override it."""
    async with api_for(kubeconfig) as client:
        yield client


@pytest.fixture
async def ctl(kubeconfig: Path, api: Api) -> AsyncIterator[Running]:
    """An LB-IPAM controller in this process (reuse delay 0.5 s), stopped after the test."""
    async with controller(kubeconfig, reuse_delay=0.5) as running:
        yield running


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """Each `--podcidr-target`, for the PodCIDR scenario tests."""
    return str(request.param)
