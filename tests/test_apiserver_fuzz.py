"""Seeded fuzzing of the embedded API server: mutated objects of every kind, CRDs and custom
objects, sent with every verb and patch type. Any 500 fails; every error must be a Status."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lbipam.apiserver.server import EmbeddedAPIServer

JSON = "application/json"


@pytest.fixture
async def http(apiserver: EmbeddedAPIServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with apiserver.session() as session:
        yield session


def _mutations(rng: random.Random) -> Any:
    """A random JSON value: what a confused client might send in place of a field."""
    choice = rng.randrange(9)
    scalars = [None, True, 0, -1, 2**70, 1.5, "", "x" * rng.randrange(1, 80), "\n\x00", "192.0.2.1/40"]
    if choice < 5:
        return rng.choice(scalars)
    if choice < 7:
        return [_mutations(rng) for _ in range(rng.randrange(3))]
    return {
        rng.choice(["name", "port", "type", "ip", "x", "labels"]): _mutations(rng)
        for _ in range(rng.randrange(3))
    }


def _mutate(obj: Any, rng: random.Random) -> Any:
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        key = rng.choice(list(obj))
        out = dict(obj)
        out[key] = _mutate(obj[key], rng) if rng.random() < 0.6 else _mutations(rng)
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        index = rng.randrange(len(obj))
        return [*obj[:index], _mutate(obj[index], rng), *obj[index + 1 :]]
    return _mutations(rng)


SEEDS = {
    "/api/v1/namespaces/default/services": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fz", "labels": {"a": "b"}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "targetPort": 8080}],
            "ipFamilyPolicy": "PreferDualStack",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
    },
    "/api/v1/nodes": {"metadata": {"name": "fz"}, "spec": {"podCIDRs": ["10.0.0.0/24"]}},
    "/api/v1/namespaces/default/events": {
        "metadata": {"name": "fz"},
        "involvedObject": {"kind": "Service", "namespace": "default", "name": "x"},
        "lastTimestamp": "2024-01-01T00:00:00Z",
    },
    "/apis/events.k8s.io/v1/namespaces/default/events": {
        "metadata": {"name": "fz2"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:00.000000Z"},
    },
    "/apis/coordination.k8s.io/v1/namespaces/default/leases": {
        "metadata": {"name": "fz"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 10,
            "renewTime": "2024-01-01T00:00:00.000000Z",
        },
    },
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices": {
        "metadata": {"name": "fz"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"port": 80}],
    },
    "/api/v1/namespaces/default/secrets": {
        "metadata": {"name": "fz"},
        "stringData": {"k": "v"},
        "type": "Opaque",
    },
    "/api/v1/namespaces": {"metadata": {"name": "fz"}},
}


@pytest.mark.parametrize("seed", [20240501, 7, 1234])
async def test_fuzzed_bodies_never_get_a_500(http: aiohttp.ClientSession, seed: int) -> None:
    rng = random.Random(seed)
    patch_types = [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ]
    for _ in range(40):
        for collection, original in SEEDS.items():
            name = original["metadata"]["name"]
            mutated = _mutate(original, rng)
            requests = [
                ("POST", collection, mutated, JSON),
                ("PUT", f"{collection}/{name}", mutated, JSON),
                (
                    "PATCH",
                    f"{collection}/{name}",
                    _mutations(rng) if rng.random() < 0.3 else mutated,
                    rng.choice(patch_types),
                ),
                ("PUT", f"{collection}/{name}/status", mutated, JSON),
            ]
            for method, path, payload, ctype in requests:
                data = json.dumps(payload).encode()
                async with http.request(method, path, data=data, headers={"Content-Type": ctype}) as response:
                    text = await response.text()
                assert response.status < 500, (method, path, payload, text)
                if response.status >= 400:
                    assert json.loads(text)["kind"] == "Status"
            async with http.delete(f"{collection}/{name}") as response:
                assert response.status < 500


async def test_fuzzed_crds_and_custom_objects_never_get_a_500(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    rng = random.Random(99)
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    async with http.get(f"{crd_path}/bgppeers.lbipam.io") as response:
        crd = await response.json()
    crd["metadata"] = {"name": crd["metadata"]["name"]}
    crd.pop("status")
    seeds = {
        crd_path: crd,
        "/apis/lbipam.io/v1alpha1/loadbalancerippools": {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "LoadBalancerIPPool",
            "metadata": {"name": "fz"},
            "spec": {"blocks": [{"cidr": "192.0.2.0/24"}, {"start": "198.51.100.1"}], "serviceSelector": {}},
        },
        "/apis/lbipam.io/v1alpha1/bgppeers": {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "BGPPeer",
            "metadata": {"name": "fz"},
            "spec": {
                "peerAddress": "192.0.2.1",
                "peerASN": 64512,
                "localASN": 64513,
                "families": ["ipv4-unicast"],
            },
        },
    }
    for _ in range(60):
        for collection, original in seeds.items():
            name = original["metadata"]["name"]
            for mutated in (_mutate(original, rng), _mutate(_mutate(original, rng), rng)):
                for method, path in (("POST", collection), ("PUT", f"{collection}/{name}")):
                    data = json.dumps(mutated).encode()
                    async with http.request(
                        method, path, data=data, headers={"Content-Type": JSON}
                    ) as response:
                        text = await response.text()
                    assert response.status < 500, (method, path, mutated, text)
            if collection != crd_path:
                async with http.delete(f"{collection}/{name}") as response:
                    assert response.status < 500
