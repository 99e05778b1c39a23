"""The pure parts of `lbipam migrate` one by one: the OR of label selectors (a property: the
union selects exactly what any of its selectors selects), Go durations, communities, names and
address blocks, the legacy MetalLB ConfigMap, and the merge of peers that dial one address."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbipam.core.selectors import compile_selector
from lbipam.migrate import labels, translate
from lbipam.migrate.metallb_pools import block
from lbipam.migrate.shapes import dns_name, go_duration, large_community, load_yaml, standard_community

KEYS = ["app", "tier", "zone"]
VALUES = ["a", "b", "c"]
requirement = st.one_of(
    st.tuples(
        st.sampled_from(KEYS), st.sampled_from(["In", "NotIn"]), st.sets(st.sampled_from(VALUES), min_size=1)
    ),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(["Exists", "DoesNotExist"]), st.just(set())),
)
selector = st.lists(requirement, max_size=3).map(
    lambda reqs: labels.to_selector((k, op, tuple(sorted(vs))) for k, op, vs in reqs)
)
label_set = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES))


@settings(max_examples=300, deadline=None)
@given(st.lists(selector, min_size=1, max_size=4), st.lists(label_set, min_size=1, max_size=20))
def test_union_selects_what_any_selector_selects(
    selectors: list[dict[str, object]], samples: list[dict[str, str]]
) -> None:
    merged = labels.union(selectors)
    if merged is None:
        return  # not expressible: the callers split or report
    one = compile_selector(merged)
    each = [compile_selector(s) for s in selectors]
    for sample in samples:
        assert one.matches(sample) == any(s.matches(sample) for s in each), (selectors, merged, sample)


UNIONS = [
    ("identical", [{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "1"}}], {"matchLabels": {"a": "1"}}),
    ("empty selects all", [{"matchLabels": {"a": "1"}}, {}], {}),
    (
        "values of one key",
        [{"matchLabels": {"h": "x", "r": "1"}}, {"matchLabels": {"h": "y", "r": "1"}}],
        {
            "matchLabels": {"r": "1"},
            "matchExpressions": [{"key": "h", "operator": "In", "values": ["x", "y"]}],
        },
    ),
    (
        "implied drops out",
        [{"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "1", "b": "2"}}],
        {"matchLabels": {"a": "1"}},
    ),
    ("two keys", [{"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "2"}}], None),
    (  # a=1 implies "a exists", but only set-wise implication is looked for
        "In and Exists on one key stay apart",
        [{"matchLabels": {"a": "1"}}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]}],
        None,
    ),
]


@pytest.mark.parametrize(("selectors", "expected"), [c[1:] for c in UNIONS], ids=[c[0] for c in UNIONS])
def test_union_table(selectors: list[dict[str, object]], expected: dict[str, object] | None) -> None:
    assert labels.union(selectors) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1m30s", 90),
        ("9m0s", 540),
        ("1h", 3600),
        ("0s", 0),
        ("0", 0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
    ],
)
def test_go_duration(text: str, seconds: float) -> None:
    assert go_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "s", "1m30", "-5s", "1d", 90, "", "5s5"])
def test_go_duration_refuses(text: object) -> None:
    with pytest.raises(ValueError, match=r"is not a duration|is negative"):
        go_duration(text)


@pytest.mark.parametrize(
    ("text", "community"),
    [("64512:100", "64512:100"), ("064512:0100", "64512:100"), ("4294901761", "65535:1"), ("0", "0:0")],
)
def test_standard_community(text: str, community: str) -> None:
    assert standard_community(text) == community


@pytest.mark.parametrize("text", ["65536:1", "1:65536", "4294967296", "a:b", "1:2:3", "-1"])
def test_standard_community_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        standard_community(text)


def test_large_community() -> None:
    assert large_community("4294967295:0:007") == "4294967295:0:7"
    with pytest.raises(ValueError, match="not a large community"):
        large_community("1:2")


def test_go_yaml_has_no_base_60_numbers() -> None:
    assert load_yaml("communities: [64512:100, 1:2]\nn: 12\nf: 1.5\n") == [
        {"communities": ["64512:100", "1:2"], "n": 12, "f": 1.5}
    ]


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("Peer_A",), "peer-a"),
        (("rack0", "64512", "2001:db8::1"), "rack0-64512-2001-db8-1"),
        (("-x-",), "x"),
        (("__",), "unnamed"),
    ],
)
def test_dns_name(parts: tuple[str, ...], name: str) -> None:
    assert dns_name(*parts) == name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.0/24", ({"cidr": "192.0.2.0/24"}, False)),
        ("192.0.2.7/24", ({"cidr": "192.0.2.0/24"}, True)),
        ("192.0.2.1 - 192.0.2.9", ({"start": "192.0.2.1", "stop": "192.0.2.9"}, False)),
        ("2001:0db8::/64", ({"cidr": "2001:db8::/64"}, False)),
    ],
)
def test_metallb_address_blocks(text: str, expected: tuple[dict[str, str], bool]) -> None:
    assert block(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.0.2.0/33", "longer than /32"),
        ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("x", "not a CIDR"),
        ("192.0.2.1-", "not an IP address"),
        (7, "not a CIDR or a range"),
    ],
)
def test_metallb_address_blocks_refuse(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        block(text)


def _peer(name: str, node: str, **spec: object) -> dict[str, object]:
    base = {
        "myASN": 64512,
        "peerASN": 64513,
        "peerAddress": "192.0.2.1",
        "nodeSelectors": [{"matchLabels": {"host": node}}],
    }
    return {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": "m"},
        "spec": {**base, **spec},
    }


def test_per_node_peers_of_one_router_become_one_and_advertisements_follow() -> None:
    ad = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": "ad", "namespace": "m"},
        "spec": {"peers": ["b"]},
    }
    report = translate("metallb", [_peer("b", "n2", password="pw"), _peer("a", "n1", password="pw"), ad])
    peers = [o.obj for o in report.outputs if o.kind == "BGPPeer"]
    assert [p["metadata"]["name"] for p in peers] == ["a"]
    assert peers[0]["spec"]["nodeSelector"] == {
        "matchExpressions": [{"key": "host", "operator": "In", "values": ["n1", "n2"]}]
    }
    assert [o.name for o in report.outputs if o.kind == "Secret"] == ["a-bgp-password"]
    assert next(o.obj for o in report.outputs if o.kind == "BGPAdvertisement")["spec"]["peers"] == ["a"]
    assert report.complete


def test_peers_of_one_router_that_differ_stay_apart() -> None:
    report = translate("metallb", [_peer("a", "n1"), _peer("b", "n2", peerASN=64999)])
    assert [o.name for o in report.outputs if o.kind == "BGPPeer"] == ["a"]
    assert not report.complete
    assert any("lbipam opens one session per router address" in f.reason for f in report.findings)


def test_a_password_never_reaches_a_finding() -> None:
    report = translate("metallb", [_peer("a", "n1", password="s3cr3t-value", holdTime="bogus")])
    assert report.findings
    assert not any("s3cr3t" in f.line() for f in report.findings)


def _bfd_inputs() -> list[dict[str, object]]:
    profile = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BFDProfile",
        "metadata": {"name": "fast", "namespace": "m"},
        "spec": {"receiveInterval": 100, "transmitInterval": 150},
    }
    return [profile, _peer("a", "n1", bfdProfile="fast")]


def test_a_bfd_profile_becomes_the_peers_bfd() -> None:
    report = translate("metallb", _bfd_inputs())
    (peer,) = [o.obj for o in report.outputs if o.kind == "BGPPeer"]
    assert peer["spec"]["bfd"] == {"enabled": True, "minRxMs": 100, "minTxMs": 150, "multiplier": 3}
    assert report.complete
