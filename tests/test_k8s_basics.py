"""Pure pieces of lbipam.k8s: resource paths, watch-line framing, key=value logs, time formats,
and when the HTTP session may skip the environment (trust_env)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio.client import Configuration

from lbipam.k8s import resources as r
from lbipam.k8s.config import use_trust_env
from lbipam.k8s.errors import Expired, TemporaryError
from lbipam.k8s.logs import KVLog, kv, object_log
from lbipam.k8s.times import micro_time, parse_time, rfc3339
from lbipam.k8s.wire import JsonLines, parse_watch_event, selector_text


@pytest.mark.parametrize(
    ("resource", "namespace", "name", "sub", "path"),
    [
        (r.SERVICES, None, None, None, "/api/v1/services"),
        (r.SERVICES, "web", None, None, "/api/v1/namespaces/web/services"),
        (r.SERVICES, "web", "front", "status", "/api/v1/namespaces/web/services/front/status"),
        (r.NODES, None, "node-a", None, "/api/v1/nodes/node-a"),
        (r.ENDPOINTSLICES, "web", None, None, "/apis/discovery.k8s.io/v1/namespaces/web/endpointslices"),
        (
            r.LEASES,
            "kube-system",
            "lbipam",
            None,
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lbipam",
        ),
        (r.EVENTS, "default", None, None, "/apis/events.k8s.io/v1/namespaces/default/events"),
        (
            r.CRDS,
            None,
            "bgppeers.lbipam.io",
            None,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bgppeers.lbipam.io",
        ),
        (r.LBPOOLS, None, "blue", "status", "/apis/lbipam.io/v1alpha1/loadbalancerippools/blue/status"),
        (r.CILIUMNODES, None, "n1", None, "/apis/cilium.io/v2/ciliumnodes/n1"),
    ],
    ids=lambda v: v.plural if isinstance(v, r.Resource) else str(v),
)
def test_resource_paths(
    resource: r.Resource, namespace: str | None, name: str | None, sub: str | None, path: str
) -> None:
    assert resource.path(namespace, name, sub) == path


@pytest.mark.parametrize(
    ("resource", "namespace", "name", "sub", "message"),
    [
        (r.NODES, "default", "n1", None, "cluster-scoped"),
        (r.SERVICES, None, "front", None, "needs metadata.namespace"),
        (r.SECRETS, "default", "s", "status", "no status subresource"),
        (r.SERVICES, "web", None, "status", "needs an object name"),
        (r.SERVICES, "web", "", None, "empty object name"),
    ],
    ids=["namespace-on-cluster-scoped", "no-namespace", "no-status", "status-without-name", "empty-name"],
)
def test_resource_paths_reject_impossible_addresses(
    resource: r.Resource, namespace: str | None, name: str | None, sub: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resource.path(namespace, name, sub)


def test_resource_path_segments_are_escaped() -> None:
    assert r.SECRETS.path("a/b", "c?d") == "/api/v1/namespaces/a%2Fb/secrets/c%3Fd"


def test_every_lbipam_kind_is_cluster_scoped_with_status() -> None:
    lbipam = [res for res in r.ALL if res.group == "lbipam.io"]
    assert {res.kind for res in lbipam} == {
        "LoadBalancerIPPool",
        "PodCIDRPool",
        "BGPPeer",
        "BGPAdvertisement",
        "BGPNodeState",
    }
    assert all(
        not res.namespaced and res.has_status and res.api_version == "lbipam.io/v1alpha1" for res in lbipam
    )


@given(
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=40), max_size=3), max_size=6), st.data()
)
def test_json_lines_are_the_same_whatever_the_chunking(
    objects: list[dict[str, str]], data: st.DataObject
) -> None:
    stream = b"".join(json.dumps(o).encode() + b"\n" for o in objects)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = JsonLines()
    lines: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        lines += framer.feed(stream[start:end])
    lines += framer.flush()
    assert [json.loads(line) for line in lines] == objects


def test_json_lines_flush_returns_an_unterminated_last_line() -> None:
    framer = JsonLines()
    assert framer.feed(b'{"a": 1}\n\n{"b"') == [b'{"a": 1}']
    assert framer.feed(b": 2}") == []
    assert framer.flush() == [b'{"b": 2}']


def test_watch_error_event_410_raises_expired_with_its_message() -> None:
    line = json.dumps(
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "code": 410,
                "reason": "Expired",
                "message": "too old resource version",
            },
        }
    ).encode()
    with pytest.raises(Expired, match="too old resource version") as info:
        parse_watch_event(line)
    assert info.value.code == 410


@pytest.mark.parametrize(
    "line", [b"{not json", b'{"type": "ADDED"}', b"[1, 2]"], ids=["garbage", "no-object", "list"]
)
def test_malformed_watch_lines_are_temporary_errors(line: bytes) -> None:
    with pytest.raises(TemporaryError) as info:
        parse_watch_event(line)
    assert info.value.reason == "MalformedWatchEvent"


def test_watch_events_pass_through() -> None:
    assert parse_watch_event(b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}') == (
        "BOOKMARK",
        {"metadata": {"resourceVersion": "7"}},
    )


@pytest.mark.parametrize(
    ("selector", "text"),
    [(None, None), ("", None), ("a=b", "a=b"), ({"a": "b", "c": "d"}, "a=b,c=d"), ({}, None)],
    ids=["none", "empty", "string", "dict", "empty-dict"],
)
def test_selector_text(selector: str | dict[str, str] | None, text: str | None) -> None:
    assert selector_text(selector) == text


PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.mark.parametrize(
    ("env", "proxy_url", "host", "trust"),
    [
        ({}, None, "https://192.0.2.10:6443", False),
        ({"HTTPS_PROXY": "http://203.0.113.5:3128"}, None, "https://192.0.2.10:6443", True),
        ({"HTTPS_PROXY": "http://203.0.113.5:3128"}, None, "http://127.0.0.1:8080", False),
        (
            {"HTTPS_PROXY": "http://203.0.113.5:3128", "NO_PROXY": "192.0.2.10"},
            None,
            "https://192.0.2.10:6443",
            False,
        ),
        ({"ALL_PROXY": "http://203.0.113.5:3128"}, None, "http://127.0.0.1:8080", True),
        ({}, "http://203.0.113.5:3128", "https://192.0.2.10:6443", True),
    ],
    ids=[
        "no-proxy",
        "https-proxy",
        "https-proxy-but-http-host",
        "no-proxy-bypass",
        "all-proxy",
        "kubeconfig-proxy-url",
    ],
)
def test_trust_env_only_when_a_proxy_applies(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], proxy_url: str | None, host: str, trust: bool
) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    configuration = Configuration(host=host)
    configuration.proxy = proxy_url
    assert use_trust_env(configuration) is trust


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"a": 1, "b": "x"}, "a=1 b=x"),
        ({"msg": "two words"}, 'msg="two words"'),
        ({"q": 'say "hi"'}, 'q="say \\"hi\\""'),
        ({"nl": "a\nb"}, 'nl="a\\nb"'),
        ({"eq": "a=b"}, 'eq="a=b"'),
        ({"empty": ""}, 'empty=""'),
        ({"skip": None, "keep": 0}, "keep=0"),
    ],
    ids=["plain", "space", "quotes", "newline", "equals", "empty", "none-skipped"],
)
def test_kv_quotes_what_would_break_a_line(fields: dict[str, object], line: str) -> None:
    assert kv(fields) == line


def test_object_log_binds_kind_namespace_and_name(caplog: pytest.LogCaptureFixture) -> None:
    svc = {"metadata": {"namespace": "web", "name": "front"}}
    with caplog.at_level(logging.INFO, logger="lbipam.test"):
        object_log("lbipam.test", r.SERVICES, svc).info("ip allocated", ip="192.0.2.7")
        KVLog("lbipam.test").bind(node="n1").warning("peer down", peer="tor a")
    assert caplog.messages == [
        "ip allocated kind=Service namespace=web name=front ip=192.0.2.7",
        'peer down node=n1 peer="tor a"',
    ]


def test_time_formats() -> None:
    when = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert rfc3339(when) == "2024-05-01T10:00:00Z"
    assert micro_time(when) == "2024-05-01T10:00:00.123456Z"
    assert parse_time(micro_time(when)) == when
    assert parse_time("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
