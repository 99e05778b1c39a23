"""Property-based fuzzing of a live embedded API server with hypothesis (bounded, derandomized).

Each example creates one valid object of every kind, then sends a short sequence of requests
with random methods, paths (collections, objects, /status, watches, nonsense), query parameters,
content types and bodies: JSON values (NaN, Infinity, huge integers, lone surrogates, deep
nesting), objects of the served kinds with random fields, YAML with anchors and aliases, and
merge, strategic, JSON and apply patches. Properties: no answer is a 5xx, none takes longer than
`HANG` seconds, every error is a Status, and after every example each list of every kind parses
and every stored object can be read, patched and deleted (which also empties the server for the
next example).

The budget is fixed: `derandomize=True` (the same examples every run, no example database) and
`max_examples`; the seeded random.Random fuzzers are in test_apiserver_fuzz.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import aiohttp
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.apiserver_probe import lists_parse_and_objects_yield
from tests.test_apiserver_fuzz import SEEDS as FUZZ_SEEDS

SEEDS = {
    **FUZZ_SEEDS,
    "/apis/lbipam.io/v1alpha1/loadbalancerippools": {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": "fz"},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}], "serviceSelector": {}},
    },
    "/api/v1/namespaces/default/configmaps": {"metadata": {"name": "fz"}, "data": {"k": "v"}},
    "/apis/events.k8s.io/v1/namespaces/default/events": {
        "metadata": {"name": "fz2"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "lbipam.io/fuzz",
        "reportingInstance": "fuzz-1",
        "action": "Fuzz",
        "reason": "Fuzzed",
        "type": "Normal",
        "regarding": {"kind": "Service", "namespace": "default", "name": "fz"},
    },
}
JSON = "application/json"
YAML = "application/yaml"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = [
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    APPLY,
]
HANG = 20.0  # seconds: far beyond any honest answer, short of pytest's timeout
NS = "/api/v1/namespaces/default"
ALL_LISTS = [
    "/api/v1/services",
    "/api/v1/configmaps",
    "/api/v1/secrets",
    "/api/v1/events",
    "/apis/discovery.k8s.io/v1/endpointslices",
    "/apis/coordination.k8s.io/v1/leases",
    "/api/v1/nodes",
    "/api/v1/namespaces",
    "/apis/lbipam.io/v1alpha1/loadbalancerippools",
]
CONTENT_TYPES = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "text/plain",
    "",
]
NAMES = st.sampled_from(["fz", "fz2", "web", "a" * 70, "Bad_Name", "x.y", ""])

# Any character, lone surrogates included (hypothesis leaves category Cs out by default).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
FIELD_NAMES = ["spec", "status", "data", "metadata", "port", "x", "labels", "type", "name"]


@st.composite
def nested(draw: st.DrawFn) -> Any:
    value: Any = draw(SCALARS)
    for _ in range(draw(st.integers(min_value=1, max_value=150))):
        value = {"x": value} if draw(st.booleans()) else [value]
    return value


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every object and array inside `value` (where a mutation can land)."""
    found = [path]
    if isinstance(value, dict):
        for key, sub in value.items():
            if isinstance(sub, dict | list):
                found += _containers(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            if isinstance(sub, dict | list):
                found += _containers(sub, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, seed: dict[str, Any]) -> dict[str, Any]:
    """`seed` (a valid object) with up to three fields set to random values."""
    obj = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(_containers(obj)))
        target: Any = obj
        for step in path:
            target = target[step]
        value = draw(JSON_VALUES | nested() | st.just(None))
        if isinstance(target, dict):
            target[draw(st.sampled_from([*target, *FIELD_NAMES]))] = value
        elif target:
            target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = value
    return obj


@st.composite
def yaml_with_anchors(draw: st.DrawFn) -> str:
    """A YAML object whose data may be an alias of aliases (a small "billion laughs")."""
    anchors = draw(st.integers(min_value=0, max_value=4))
    lines = [f"metadata: {{name: '{draw(NAMES)}'}}", "a0: &a0 [x, y, z]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, anchors + 1)]
    lines.append(f"data: {{k: *a{anchors}}}" if draw(st.booleans()) else "data: {k: v}")
    return "\n".join(lines) + "\n"


JSON_PATCHES = st.lists(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "nope"])},
        optional={
            "path": st.sampled_from(["/metadata/labels", "/spec", "/spec/ports/0", "/x", "", "bad"]),
            "value": JSON_VALUES | nested(),
            "from": st.sampled_from(["/metadata", "/spec", "/nope"]),
        },
    ),
    max_size=3,
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode(errors="surrogatepass")


JUNK = (
    JSON_VALUES.map(_encode)
    | nested().map(_encode)
    | JSON_PATCHES.map(_encode)
    | yaml_with_anchors().map(str.encode)
    | st.binary(max_size=40)
)
ODD_PATHS = st.sampled_from(
    ["/api", "/apis", "/version", "/nothing", "/api/v1/namespaces/nope/services", "/"]
)
QUERIES = st.sampled_from(
    [
        {},
        {"fieldValidation": "Strict"},
        {"fieldValidation": "Ignore"},
        {"dryRun": "All"},
        {"watch": "true", "timeoutSeconds": "1"},
        {"limit": "1"},
        {"labelSelector": "a in (b"},
        {"fieldSelector": "metadata.name=fz"},
    ]
)
Request = tuple[str, str, dict[str, str], str, bytes]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """One request aimed at a served kind: a mutated object sent with a fitting verb and body
    type most of the time, nonsense (any body, odd paths) some of the time."""
    collection = draw(st.sampled_from(sorted(SEEDS)))
    seed = SEEDS[collection]
    name = seed["metadata"]["name"]
    obj = draw(mutated(seed))
    method = draw(st.sampled_from(["POST", "POST", "PUT", "PATCH", "PATCH", "PATCH", "GET", "DELETE"]))
    query = dict(draw(QUERIES))
    path, ctype = collection, JSON
    body = _encode(obj)
    if method == "POST" and draw(st.booleans()):
        ctype, body = YAML, yaml.safe_dump(obj).encode(errors="surrogatepass")
    elif method in ("PUT", "GET", "DELETE"):
        path = draw(st.sampled_from([f"{collection}/{name}", f"{collection}/{name}/status", collection]))
    elif method == "PATCH":
        path = draw(st.sampled_from([f"{collection}/{name}", f"{collection}/{name}/status"]))
        ctype = draw(st.sampled_from(PATCH_TYPES))
        if ctype == APPLY:
            query["fieldManager"] = "fuzz"
            if draw(st.booleans()):
                query["force"] = "true"
        elif ctype == "application/json-patch+json":
            body = _encode(draw(JSON_PATCHES))
        else:
            body = _encode({k: v for k, v in obj.items() if draw(st.booleans())})
    # Hypothesis leans to small integers: the rare branches take a value from the middle.
    if draw(st.integers(min_value=0, max_value=9)) == 5:
        body = draw(JUNK)
    if draw(st.integers(min_value=0, max_value=19)) == 10:
        path = draw(ODD_PATHS)
    if draw(st.integers(min_value=0, max_value=19)) == 10:
        ctype = draw(st.sampled_from(CONTENT_TYPES))
    return method, path, query, ctype, body


async def _send(http: aiohttp.ClientSession, request: Request) -> None:
    method, path, query, ctype, body = request
    headers = {"Content-Type": ctype} if ctype else {}
    async with http.request(method, path, params=query, data=body, headers=headers) as response:
        text = await asyncio.wait_for(response.text(errors="replace"), HANG)
    assert response.status < 500, (request, response.status, text)
    if response.status >= 400:
        assert json.loads(text)["kind"] == "Status", text


@settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(sequence=st.lists(requests(), min_size=1, max_size=6))
async def test_random_requests_never_break_the_server(
    apiserver: EmbeddedAPIServer, lbipam_crds: list[str], sequence: list[Request]
) -> None:
    async with apiserver.session() as http:
        for collection, seed in SEEDS.items():  # something to update, patch and delete
            async with http.post(collection, json=seed) as response:
                assert response.status in (201, 409), await response.text()
        for request in sequence:
            await asyncio.wait_for(_send(http, request), HANG)
    await asyncio.wait_for(lists_parse_and_objects_yield(apiserver, ALL_LISTS), 60)
