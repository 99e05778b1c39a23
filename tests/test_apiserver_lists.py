"""Lists on the embedded API server: label and field selectors (and their parser), limit/continue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds.selectors import labels_match, parse_field_selector, parse_label_selector
from lbipam.apiserver.server import EmbeddedAPIServer
from tests.helpers import api_client

NS = "default"
CMS = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param("", {}, True, id="empty"),
        pytest.param("app=web", {"app": "web"}, True, id="equals"),
        pytest.param("app==web", {"app": "db"}, False, id="double-equals"),
        pytest.param("app!=web", {}, True, id="not-equals-absent"),
        pytest.param("app!=web", {"app": "web"}, False, id="not-equals"),
        pytest.param("tier in (a, b)", {"tier": "b"}, True, id="in"),
        pytest.param("tier notin (a,b)", {}, True, id="notin-absent"),
        pytest.param("tier notin (a,b)", {"tier": "a"}, False, id="notin"),
        pytest.param("app", {"app": ""}, True, id="exists"),
        pytest.param("!app", {"app": "x"}, False, id="not-exists"),
        pytest.param("app=web,!legacy,tier in (a)", {"app": "web", "tier": "a"}, True, id="all"),
        pytest.param("example.com/role=edge", {"example.com/role": "edge"}, True, id="prefixed-key"),
        pytest.param("size>3", {"size": "4"}, True, id="gt"),
    ],
)
def test_label_selector_parsing_and_matching(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert labels_match(parse_label_selector(selector), labels) is matches


@pytest.mark.parametrize(
    "selector",
    ["app=", "in (a)", "app in a", "app in ()", "app=web,", "a b", "app=we b", "Bad Key=x", "a=(b)"],
)
def test_malformed_label_selectors_are_400(selector: str) -> None:
    if selector == "app=":
        assert parse_label_selector(selector)[0].values == ("",)  # an empty value is allowed
        return
    with pytest.raises(StatusError) as info:
        parse_label_selector(selector)
    assert info.value.code == 400


def test_field_selector_parsing() -> None:
    supported = {"metadata.name", "metadata.namespace"}.__contains__
    parsed = parse_field_selector("metadata.name=a\\,b,metadata.namespace!=x", supported)
    assert [(r.field, r.op, r.value) for r in parsed] == [
        ("metadata.name", "=", "a,b"),
        ("metadata.namespace", "!=", "x"),
    ]
    with pytest.raises(StatusError) as info:
        parse_field_selector("spec.type=LoadBalancer", supported)
    assert (info.value.code, info.value.message) == (400, "field label not supported: spec.type")


@pytest.fixture
async def core(kubeconfig: Path) -> AsyncIterator[Any]:
    async with api_client(kubeconfig) as api:
        yield client.CoreV1Api(api)


async def test_selectors_with_the_real_client(core: Any) -> None:
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "web"}), ("c", {"app": "db"})):
        await core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})
    await core.create_namespace({"metadata": {"name": "other"}})
    await core.create_namespaced_config_map("other", {"metadata": {"name": "a", "labels": {"app": "web"}}})

    async def names(**kw: Any) -> list[str]:
        items = (await core.list_config_map_for_all_namespaces(**kw)).items
        return [f"{c.metadata.namespace}/{c.metadata.name}" for c in items]

    assert await names(label_selector="app=web") == ["default/a", "default/b", "other/a"]
    assert await names(label_selector="app in (db),!tier") == ["default/c"]
    assert await names(label_selector="tier") == ["default/a"]
    assert await names(field_selector="metadata.name=a") == ["default/a", "other/a"]
    assert await names(field_selector="metadata.namespace!=default") == ["other/a"]
    assert await names(field_selector="metadata.name==a,metadata.namespace=other") == ["other/a"]
    with pytest.raises(ApiException) as info:
        await names(field_selector="data.x=y")
    assert info.value.status == 400
    assert json.loads(info.value.body)["message"] == "field label not supported: data.x"


async def test_limit_and_continue_give_a_consistent_snapshot(apiserver: EmbeddedAPIServer) -> None:
    async with apiserver.session() as http:
        for index in range(7):
            async with http.post(CMS, json={"metadata": {"name": f"cm{index}"}}) as response:
                assert response.status == 201
        async with http.get(CMS, params={"limit": "3"}) as response:
            first = await response.json()
        assert [i["metadata"]["name"] for i in first["items"]] == ["cm0", "cm1", "cm2"]
        assert first["metadata"]["remainingItemCount"] == 4
        async with http.delete(f"{CMS}/cm4") as response:
            assert response.status == 200
        names, token = [], first["metadata"]["continue"]
        while token:
            async with http.get(CMS, params={"limit": "3", "continue": token}) as response:
                page = await response.json()
            assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            names += [i["metadata"]["name"] for i in page["items"]]
            token = page["metadata"].get("continue")
        assert names == ["cm3", "cm4", "cm5", "cm6"], "the list is of one moment"


async def test_an_expired_continue_token_is_410(apiserver: EmbeddedAPIServer) -> None:
    async with apiserver.session() as http:
        for index in range(3):
            async with http.post(CMS, json={"metadata": {"name": f"cm{index}"}}) as response:
                assert response.status == 201
        async with http.get(CMS, params={"limit": "1"}) as response:
            token = (await response.json())["metadata"]["continue"]
        apiserver.reads._snapshots.clear()  # as if the snapshot had aged out
        async with http.get(CMS, params={"limit": "1", "continue": token}) as response:
            assert response.status == 200, "unchanged since: the current state is that moment"
        async with http.post(CMS, json={"metadata": {"name": "late"}}) as response:
            assert response.status == 201
        apiserver.reads._snapshots.clear()
        async with http.get(CMS, params={"limit": "1", "continue": token}) as response:
            status = await response.json()
        assert (response.status, status["reason"]) == (410, "Expired")
        async with http.get(CMS, params={"continue": "garbage"}) as response:
            assert response.status == 400
