"""The custom resource models: defaults, one row per rule, and messages that name field and value.

Each bad row asserts that `describe_errors` names the wire path (camelCase, [index]) and quotes
the value at fault, since those lines end up in conditions and Events as they are.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest
from exabgp.configuration.static.parser import _community, _large_community

from lbipam.api import (
    BGPAdvertisement,
    BGPNodeState,
    BGPPeer,
    BGPPeerSpec,
    FamilyCounts,
    LabelSelector,
    LoadBalancerIPPool,
    PodCIDRPool,
    PoolStatus,
    compiled,
    describe_errors,
    parse_resource,
)
from lbipam.api.bgpadvertisement import NUMERIC_SPELLING, WELL_KNOWN_COMMUNITIES, decimal_upto
from lbipam.api.common import quote
from lbipam.core.addresses import Block
from lbipam.core.selectors import EVERYTHING

Model = type[pydantic.BaseModel]
KIND_MODELS: dict[str, Model] = {
    "pool": LoadBalancerIPPool,
    "pcpool": PodCIDRPool,
    "peer": BGPPeer,
    "adv": BGPAdvertisement,
}
BASE_SPECS: dict[str, dict[str, Any]] = {
    "pool": {"blocks": [{"cidr": "192.0.2.0/24"}]},
    "pcpool": {"ipv4": {"cidrs": ["10.244.0.0/16"], "maskSize": 24}},
    "peer": {"peerAddress": "192.0.2.1", "peerASN": 64512, "localASN": 64513},
    "adv": {},
}


def manifest(kind: str, **spec: Any) -> dict[str, Any]:
    """A manifest of `kind` whose spec is the base spec updated with `spec`."""
    model = KIND_MODELS[kind]
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": model.__name__,
        "metadata": {"name": "test"},
        "spec": {**BASE_SPECS[kind], **spec},
    }


def error_lines(data: dict[str, Any]) -> list[str]:
    with pytest.raises(pydantic.ValidationError) as info:
        parse_resource(data)
    return describe_errors(info.value)


def bad(case_id: str, kind: str, spec: dict[str, Any], *expected: str) -> Any:
    return pytest.param(kind, spec, expected, id=f"{kind}-{case_id}")


BAD = [
    # LoadBalancerIPPool
    bad(
        "cidr-prefix-33",
        "pool",
        {"blocks": [{"cidr": "192.0.2.0/24"}, {"cidr": "192.0.2.0/33"}]},
        "spec.blocks[1].cidr: '192.0.2.0/33'",
    ),
    bad("cidr-garbage", "pool", {"blocks": [{"cidr": "banana"}]}, "spec.blocks[0].cidr: 'banana'"),
    bad(
        "cidr-host-bits",
        "pool",
        {"blocks": [{"cidr": "192.0.2.1/24"}]},
        "spec.blocks[0].cidr: '192.0.2.1/24' has host bits set; did you mean 192.0.2.0/24?",
    ),
    bad(
        "start-malformed",
        "pool",
        {"blocks": [{"start": "198.51.100.300"}]},
        "spec.blocks[0].start: '198.51.100.300' is not an IP address",
    ),
    bad(
        "stop-with-prefix",
        "pool",
        {"blocks": [{"start": "198.51.100.1", "stop": "198.51.100.9/32"}]},
        "spec.blocks[0].stop: '198.51.100.9/32'",
    ),
    bad(
        "start-after-stop",
        "pool",
        {"blocks": [{"start": "198.51.100.20", "stop": "198.51.100.10"}]},
        "spec.blocks[0].stop:",
        "198.51.100.20-198.51.100.10: start is after stop",
    ),
    bad(
        "mixed-families",
        "pool",
        {"blocks": [{"start": "198.51.100.1", "stop": "2001:db8::1"}]},
        "spec.blocks[0].stop:",
        "198.51.100.1-2001:db8::1 mixes IPv4 and IPv6",
    ),
    bad(
        "overlap",
        "pool",
        {
            "blocks": [
                {"cidr": "192.0.2.0/25"},
                {"cidr": "2001:db8::/64"},
                {"start": "192.0.2.100", "stop": "192.0.2.200"},
            ]
        },
        "spec.blocks[2]: '192.0.2.100-192.0.2.200' overlaps blocks[0] '192.0.2.0/25'",
    ),
    bad(
        "duplicate-block",
        "pool",
        {"blocks": [{"cidr": "192.0.2.0/24"}, {"cidr": "192.0.2.0/24"}]},
        "spec.blocks[1]: '192.0.2.0/24' overlaps blocks[0] '192.0.2.0/24'",
    ),
    bad(
        "cidr-and-start",
        "pool",
        {"blocks": [{"cidr": "192.0.2.0/24", "start": "192.0.2.1"}]},
        "spec.blocks[0]: give either cidr or start",
        "'192.0.2.0/24'",
        "'192.0.2.1'",
    ),
    bad("empty-block", "pool", {"blocks": [{}]}, "spec.blocks[0]: a block needs a cidr, or a start"),
    bad(
        "stop-with-cidr",
        "pool",
        {"blocks": [{"cidr": "192.0.2.0/24", "stop": "192.0.2.9"}]},
        "spec.blocks[0].stop: stop '192.0.2.9' goes with start, not with cidr",
    ),
    bad("no-blocks", "pool", {"blocks": []}, "spec.blocks:", "got []"),
    bad("typo", "pool", {"autoAsign": False}, "spec.autoAsign: unknown field (value false)"),
    bad("priority-string", "pool", {"priority": "high"}, "spec.priority:", "got 'high'"),
    bad("bool-as-string", "pool", {"disabled": "yes"}, "spec.disabled:", "got 'yes'"),
    bad(
        "selector-operator",
        "pool",
        {"serviceSelector": {"matchExpressions": [{"key": "team", "operator": "Matches", "values": ["a"]}]}},
        "spec.serviceSelector.matchExpressions[0].operator:",
        "got 'Matches'",
    ),
    bad(
        "selector-in-no-values",
        "pool",
        {"serviceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}},
        "spec.serviceSelector.matchExpressions[0].values: must be non-empty for operator In",
    ),
    bad(
        "selector-label-key",
        "pool",
        {"namespaceSelector": {"matchLabels": {"bad key": "x"}}},
        "spec.namespaceSelector.matchLabels",
        "label key 'bad key' is invalid",
    ),
    bad(
        "selector-label-value",
        "pool",
        {"serviceSelector": {"matchLabels": {"team": "-x-"}}},
        "spec.serviceSelector.matchLabels",
        "label value '-x-' is invalid",
    ),
    bad(
        "selector-typo",
        "pool",
        {"serviceSelector": {"matchLabel": {"team": "a"}}},
        "spec.serviceSelector.matchLabel: unknown field",
    ),
    # PodCIDRPool
    bad(
        "mask-over-32",
        "pcpool",
        {"ipv4": {"cidrs": ["10.244.0.0/16"], "maskSize": 33}},
        "spec.ipv4.maskSize:",
        "got 33",
    ),
    bad(
        "mask-over-128",
        "pcpool",
        {"ipv6": {"cidrs": ["fd00::/104"], "maskSize": 129}},
        "spec.ipv6.maskSize:",
        "got 129",
    ),
    bad(
        "mask-shorter-than-cidr",
        "pcpool",
        {"ipv4": {"cidrs": ["172.16.0.0/12", "10.244.0.0/16"], "maskSize": 12}},
        "spec.ipv4.maskSize: maskSize 12 is shorter than the prefix length of cidrs[1] '10.244.0.0/16'",
    ),
    bad(
        "ipv6-cidr-in-ipv4",
        "pcpool",
        {"ipv4": {"cidrs": ["10.244.0.0/16", "fd00::/104"], "maskSize": 24}},
        "spec.ipv4.cidrs[1]: 'fd00::/104' is an IPv6 CIDR, expected IPv4",
    ),
    bad(
        "ipv4-cidr-in-ipv6",
        "pcpool",
        {"ipv4": None, "ipv6": {"cidrs": ["10.0.0.0/8"], "maskSize": 24}},
        "spec.ipv6.cidrs[0]: '10.0.0.0/8' is an IPv4 CIDR, expected IPv6",
    ),
    bad(
        "overlapping-cidrs",
        "pcpool",
        {"ipv4": {"cidrs": ["10.244.0.0/16", "10.244.1.0/24"], "maskSize": 24}},
        "spec.ipv4.cidrs[1]: '10.244.1.0/24' overlaps cidrs[0] '10.244.0.0/16'",
    ),
    bad("no-cidrs", "pcpool", {"ipv4": {"cidrs": [], "maskSize": 24}}, "spec.ipv4.cidrs:", "got []"),
    bad(
        "cidr-host-bits",
        "pcpool",
        {"ipv4": {"cidrs": ["10.244.0.1/16"], "maskSize": 24}},
        "spec.ipv4.cidrs[0]: '10.244.0.1/16' has host bits set",
    ),
    bad("missing-mask", "pcpool", {"ipv4": {"cidrs": ["10.244.0.0/16"]}}, "spec.ipv4.maskSize: is required"),
    bad("no-family", "pcpool", {"ipv4": None}, "spec: give ipv4, ipv6 or both"),
    bad(
        "node-selector",
        "pcpool",
        {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
        "spec.nodeSelector.matchExpressions[0].values: must be empty for operator Exists",
    ),
    # BGPPeer
    bad("peer-address-missing", "peer", {"peerAddress": None}, "spec.peerAddress: is required"),
    bad(
        "peer-address-malformed",
        "peer",
        {"peerAddress": "192.0.2.256"},
        "spec.peerAddress: '192.0.2.256' is not an IP address",
    ),
    bad("peer-address-cidr", "peer", {"peerAddress": "192.0.2.1/32"}, "spec.peerAddress: '192.0.2.1/32'"),
    bad("peer-asn-0", "peer", {"peerASN": 0}, "spec.peerASN:", "got 0"),
    bad("peer-asn-2^32", "peer", {"peerASN": 4294967296}, "spec.peerASN:", "got 4294967296"),
    bad("peer-asn-string", "peer", {"peerASN": "64512"}, "spec.peerASN:", "got '64512'"),
    bad("local-asn-0", "peer", {"localASN": 0}, "spec.localASN:", "got 0"),
    bad("port-0", "peer", {"peerPort": 0}, "spec.peerPort:", "got 0"),
    bad("port-65536", "peer", {"peerPort": 65536}, "spec.peerPort:", "got 65536"),
    bad(
        "source-malformed",
        "peer",
        {"sourceAddress": "local"},
        "spec.sourceAddress: 'local' is not an IP address",
    ),
    bad(
        "source-family",
        "peer",
        {"sourceAddress": "2001:db8::2"},
        "spec.sourceAddress: '2001:db8::2' is IPv6 but peerAddress '192.0.2.1' is IPv4",
    ),
    bad(
        "router-id-ipv6",
        "peer",
        {"routerID": "2001:db8::2"},
        "spec.routerID: '2001:db8::2' is not an IPv4 address",
    ),
    bad("hold-time-1", "peer", {"holdTime": 1}, "spec.holdTime: holdTime 1 is not allowed"),
    bad(
        "hold-time-2",
        "peer",
        {"holdTime": 2},
        "spec.holdTime: holdTime 2 is not allowed: use 0 (no keepalives) or 3..65535",
    ),
    bad("hold-time-negative", "peer", {"holdTime": -1}, "spec.holdTime:", "got -1"),
    bad("hold-time-65536", "peer", {"holdTime": 65536}, "spec.holdTime:", "got 65536"),
    bad("multihop-0", "peer", {"ebgpMultihop": 0}, "spec.ebgpMultihop:", "got 0"),
    bad("multihop-256", "peer", {"ebgpMultihop": 256}, "spec.ebgpMultihop:", "got 256"),
    bad(
        "secret-namespace",
        "peer",
        {"passwordSecretRef": {"namespace": "Kube_System", "name": "bgp"}},
        "spec.passwordSecretRef.namespace: 'Kube_System' is not a DNS-1123 label",
    ),
    bad(
        "secret-name",
        "peer",
        {"passwordSecretRef": {"namespace": "kube-system", "name": "bgp auth"}},
        "spec.passwordSecretRef.name: 'bgp auth' is not a DNS-1123 subdomain",
    ),
    bad(
        "secret-name-missing",
        "peer",
        {"passwordSecretRef": {"namespace": "kube-system"}},
        "spec.passwordSecretRef.name: is required",
    ),
    bad(
        "secret-key",
        "peer",
        {"passwordSecretRef": {"namespace": "kube-system", "name": "bgp", "key": "pass word"}},
        "spec.passwordSecretRef.key: 'pass word' is not a Secret key",
    ),
    bad(
        "restart-time-0",
        "peer",
        {"gracefulRestart": {"restartTime": 0}},
        "spec.gracefulRestart.restartTime:",
        "got 0",
    ),
    bad(
        "restart-time-4096",
        "peer",
        {"gracefulRestart": {"restartTime": 4096}},
        "spec.gracefulRestart.restartTime:",
        "got 4096",
    ),
    bad(
        "family-unknown",
        "peer",
        {"families": ["ipv4-unicast", "ipv4-flowspec"]},
        "spec.families[1]:",
        "got 'ipv4-flowspec'",
    ),
    bad(
        "family-duplicate",
        "peer",
        {"families": ["ipv6-unicast", "ipv4-unicast", "ipv6-unicast"]},
        "spec.families[2]: 'ipv6-unicast' is listed twice",
    ),
    bad("families-empty", "peer", {"families": []}, "spec.families:", "got []"),
    # BGPAdvertisement
    bad(
        "community-one-number",
        "adv",
        {"communities": ["64512"]},
        "spec.communities[0]: '64512' is not a community",
    ),
    bad(
        "community-asn-70000",
        "adv",
        {"communities": ["70000:1"]},
        "spec.communities[0]: '70000:1' is not a community",
    ),
    bad(
        "community-value-70000",
        "adv",
        {"communities": ["no-export", "1:70000"]},
        "spec.communities[1]: '1:70000' is not a community",
    ),
    bad("community-leading-zero", "adv", {"communities": ["064512:1"]}, "spec.communities[0]: '064512:1'"),
    bad("community-upper-case", "adv", {"communities": ["NO-EXPORT"]}, "spec.communities[0]: 'NO-EXPORT'"),
    bad(
        "community-space",
        "adv",
        {"communities": ["64512:1 65000:2"]},
        "spec.communities[0]: '64512:1 65000:2'",
    ),
    bad("community-empty", "adv", {"communities": [""]}, "spec.communities[0]: '' is not a community"),
    *[
        bad(
            f"community-{name}",
            "adv",
            {"communities": [name]},
            f"spec.communities[0]: '{name}' is not a name ExaBGP 5 accepts; write '{spelling}' instead",
        )
        for name, spelling in NUMERIC_SPELLING.items()
    ],
    bad(
        "large-two-parts",
        "adv",
        {"largeCommunities": ["1:2"]},
        "spec.largeCommunities[0]: '1:2' is not a large community",
    ),
    bad(
        "large-2^32",
        "adv",
        {"largeCommunities": ["64512:1:4294967296"]},
        "spec.largeCommunities[0]: '64512:1:4294967296' is not a large community",
    ),
    bad("large-letters", "adv", {"largeCommunities": ["a:b:c"]}, "spec.largeCommunities[0]: 'a:b:c'"),
    bad(
        "peer-name",
        "adv",
        {"peers": ["tor-a", "Tor_B"]},
        "spec.peers[1]: 'Tor_B' is not a DNS-1123 subdomain",
    ),
    bad("peer-name-too-long", "adv", {"peers": ["a" * 254]}, "spec.peers[0]: 'aaaa"),
    bad("local-pref-negative", "adv", {"localPreference": -1}, "spec.localPreference:", "got -1"),
    bad("local-pref-2^32", "adv", {"localPreference": 4294967296}, "spec.localPreference:", "got 4294967296"),
    bad("med-negative", "adv", {"med": -1}, "spec.med:", "got -1"),
    bad("aggregation-33", "adv", {"aggregationLength": 33}, "spec.aggregationLength:", "got 33"),
    bad("aggregation-v6-129", "adv", {"aggregationLengthV6": 129}, "spec.aggregationLengthV6:", "got 129"),
    bad("pod-cidrs-string", "adv", {"podCIDRs": "true"}, "spec.podCIDRs:", "got 'true'"),
    bad("typo-podCidrs", "adv", {"podCidrs": True}, "spec.podCidrs: unknown field"),
]


@pytest.mark.parametrize(("kind", "spec", "expected"), BAD)
def test_bad_input_names_field_and_value(kind: str, spec: dict[str, Any], expected: tuple[str, ...]) -> None:
    data = manifest(kind, **spec)
    data["spec"] = {k: v for k, v in data["spec"].items() if v is not None}
    lines = error_lines(data)
    assert len(lines) == 1, lines
    for text in expected:
        assert text in lines[0]


# Every SafeStr field: (kind, spec, wire path), with "{}" where the injected value goes.
SAFE_FIELDS = [
    pytest.param("pool", {"blocks": [{"cidr": "{}"}]}, "spec.blocks[0].cidr", "192.0.2.0/24", id="pool-cidr"),
    pytest.param("pool", {"blocks": [{"start": "{}"}]}, "spec.blocks[0].start", "192.0.2.1", id="pool-start"),
    pytest.param(
        "pool",
        {"blocks": [{"start": "192.0.2.1", "stop": "{}"}]},
        "spec.blocks[0].stop",
        "192.0.2.9",
        id="pool-stop",
    ),
    pytest.param(
        "pcpool",
        {"ipv4": {"cidrs": ["{}"], "maskSize": 24}},
        "spec.ipv4.cidrs[0]",
        "10.0.0.0/8",
        id="pcpool-cidr",
    ),
    pytest.param("peer", {"peerAddress": "{}"}, "spec.peerAddress", "192.0.2.1", id="peer-address"),
    pytest.param("peer", {"sourceAddress": "{}"}, "spec.sourceAddress", "192.0.2.2", id="peer-source"),
    pytest.param("peer", {"routerID": "{}"}, "spec.routerID", "192.0.2.2", id="peer-router-id"),
    pytest.param(
        "peer",
        {"passwordSecretRef": {"namespace": "{}", "name": "s"}},
        "spec.passwordSecretRef.namespace",
        "kube-system",
        id="secret-namespace",
    ),
    pytest.param(
        "peer",
        {"passwordSecretRef": {"namespace": "n", "name": "{}"}},
        "spec.passwordSecretRef.name",
        "bgp-auth",
        id="secret-name",
    ),
    pytest.param(
        "peer",
        {"passwordSecretRef": {"namespace": "n", "name": "s", "key": "{}"}},
        "spec.passwordSecretRef.key",
        "password",
        id="secret-key",
    ),
    pytest.param("adv", {"communities": ["{}"]}, "spec.communities[0]", "64512:100", id="community"),
    pytest.param("adv", {"communities": ["{}"]}, "spec.communities[0]", "no-export", id="community-name"),
    pytest.param(
        "adv", {"largeCommunities": ["{}"]}, "spec.largeCommunities[0]", "64512:1:1", id="large-community"
    ),
    pytest.param("adv", {"peers": ["{}"]}, "spec.peers[0]", "tor-a", id="peer-name"),
]
INJECTIONS = [
    pytest.param("\n", id="trailing-newline"),
    pytest.param("\r", id="trailing-cr"),
    pytest.param("\r\n", id="trailing-crlf"),
    pytest.param("\nannounce route 0.0.0.0/0 next-hop self", id="second-command"),
    pytest.param("\x00", id="nul"),
    pytest.param("\x1b[2J", id="escape"),
    pytest.param("\x85", id="next-line-c1"),
    pytest.param("\u2028", id="line-separator"),
]


def _inject(template: Any, value: str) -> Any:
    if isinstance(template, dict):
        return {k: _inject(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [_inject(v, value) for v in template]
    return value if template == "{}" else template


@pytest.mark.parametrize("suffix", INJECTIONS)
@pytest.mark.parametrize(("kind", "template", "path", "good"), SAFE_FIELDS)
def test_control_characters_are_rejected(kind: str, template: Any, path: str, good: str, suffix: str) -> None:
    parse_resource(manifest(kind, **_inject(template, good)))  # the field is fine without the suffix
    value = good + suffix
    lines = error_lines(manifest(kind, **_inject(template, value)))
    assert f"{path}: {quote(value)} contains the control character" in lines[0]
    assert "\n" not in "".join(lines), "each message stays on one line"


def test_metadata_name_is_guarded_too() -> None:
    data = manifest("peer")
    data["metadata"]["name"] = "tor-a\nneighbor 192.0.2.66"
    assert error_lines(data) == [
        "metadata.name: 'tor-a\\nneighbor 192.0.2.66' contains the control character '\\n' at index 5; "
        "line breaks and control characters are not allowed"
    ]


def test_node_state_peer_name_is_guarded() -> None:
    data = {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "BGPNodeState",
        "metadata": {"name": "node-a"},
        "status": {"peers": [{"name": "tor-a\n"}]},
    }
    assert error_lines(data)[0].startswith("status.peers[0].name: 'tor-a\\n' contains the control character")


def test_the_trailing_newline_trap() -> None:
    # Python's "$" matches before a trailing newline: a naive check would let this through.
    assert re.match(r"^\d+:\d+$", "64512:100\n")
    lines = error_lines(manifest("adv", communities=["64512:100\n"]))
    assert lines == [
        "spec.communities[0]: '64512:100\\n' contains the control character '\\n' at index 9; "
        "line breaks and control characters are not allowed"
    ]


def test_peer_defaults() -> None:
    spec = BGPPeer.model_validate(manifest("peer")).spec
    assert (spec.peer_port, spec.hold_time, spec.families) == (179, 90, ["ipv4-unicast", "ipv6-unicast"])
    assert (spec.graceful_restart.enabled, spec.graceful_restart.restart_time) == (False, 120)
    optional = (spec.source_address, spec.router_id, spec.ebgp_multihop, spec.password_secret_ref)
    assert optional == (None, None, None, None)
    assert compiled(spec.node_selector) is EVERYTHING


@pytest.mark.parametrize("hold_time", [0, 3, 65535])
def test_peer_hold_time_edges(hold_time: int) -> None:
    assert BGPPeer.model_validate(manifest("peer", holdTime=hold_time)).spec.hold_time == hold_time


def test_peer_full_spec() -> None:
    spec = BGPPeer.model_validate(
        manifest(
            "peer",
            peerAddress="2001:db8::1",
            peerASN=4294967295,
            localASN=1,
            sourceAddress="2001:db8::2",
            routerID="192.0.2.9",
            ebgpMultihop=2,
            passwordSecretRef={"namespace": "kube-system", "name": "bgp"},
            families=["ipv6-unicast"],
        )
    ).spec
    assert spec.password_secret_ref is not None
    assert spec.password_secret_ref.key == "password"
    assert (spec.peer_asn, spec.local_asn, spec.router_id) == (4294967295, 1, "192.0.2.9")


def test_snake_case_names_work_in_python_and_errors_use_wire_names() -> None:
    spec = BGPPeerSpec(peer_address="192.0.2.1", peer_asn=64512, local_asn=64513)
    assert spec.to_wire()["peerASN"] == 64512
    with pytest.raises(pydantic.ValidationError) as info:
        BGPPeerSpec(peer_address="192.0.2.1", peer_asn=0, local_asn=64513)
    assert describe_errors(info.value) == ["peerASN: Input should be greater than or equal to 1, got 0"]


def test_pool_defaults_and_blocks() -> None:
    pool = LoadBalancerIPPool.model_validate(
        manifest(
            "pool",
            blocks=[
                {"cidr": "192.0.2.0/24"},
                {"start": "198.51.100.10", "stop": "198.51.100.20"},
                {"start": "2001:db8::5"},
                {"cidr": "2001:db8:1::/64"},
            ],
        )
    )
    spec = pool.spec
    assert (spec.disabled, spec.auto_assign, spec.allow_first_last_ips, spec.avoid_buggy_ips) == (
        False,
        True,
        False,
        False,
    )
    assert spec.priority == 0
    assert spec.service_selector is None
    assert spec.namespace_selector is None
    by_family = spec.blocks_by_family()
    assert by_family[4] == [Block(0xC0000200, 0xC00002FF, 4, 24), Block(0xC633640A, 0xC6336414, 4)]
    assert [str(b) for b in by_family[6]] == ["2001:db8::5", "2001:db8:1::/64"]
    assert pool.to_wire()["spec"]["allowFirstLastIPs"] is False


def test_pool_status_counts_are_exact_strings() -> None:
    status = PoolStatus(ipv6=FamilyCounts.of(2**64, 3))
    assert status.to_wire()["ipv6"] == {
        "total": "18446744073709551616",
        "used": "3",
        "available": "18446744073709551613",
    }
    assert status.to_wire()["ipv4"] == {"total": "0", "used": "0", "available": "0"}
    with pytest.raises(pydantic.ValidationError):
        FamilyCounts(total="-1")


def test_podcidr_pool_families() -> None:
    pool = PodCIDRPool.model_validate(
        manifest("pcpool", ipv6={"cidrs": ["fd00:10:244::/56", "fd00:10:245::/56"], "maskSize": 64})
    )
    ipv4 = pool.spec.family(4)
    assert ipv4 is not None
    assert ipv4.mask_size == 24
    assert [str(b) for b in pool.spec.blocks_by_family()[6]] == ["fd00:10:244::/56", "fd00:10:245::/56"]
    assert pool.spec.disabled is False
    assert pool.spec.priority == 0
    ipv6_only = PodCIDRPool.model_validate(
        manifest("pcpool", ipv4=None, ipv6={"cidrs": ["fd00::/104"], "maskSize": 120})
    )
    assert ipv6_only.spec.family(4) is None


def test_advertisement_defaults_and_communities_kept() -> None:
    communities = ["0:0", "65535:65535", "64512:100", *WELL_KNOWN_COMMUNITIES]
    large = ["0:0:0", "4294967295:4294967295:4294967295", "64512:1:1"]
    spec = BGPAdvertisement.model_validate(
        manifest("adv", communities=communities, largeCommunities=large)
    ).spec
    assert (spec.communities, spec.large_communities) == (communities, large)
    assert (spec.aggregation_length, spec.aggregation_length_v6, spec.pod_cidrs) == (32, 128, False)
    assert spec.peers == []
    assert spec.local_preference is None
    assert spec.med is None
    assert BGPAdvertisement.model_validate({**manifest("adv"), "spec": {}}).spec == spec.model_copy(
        update={"communities": [], "large_communities": []}
    )


def test_accepted_communities_are_what_exabgp_parses() -> None:
    for community in [*WELL_KNOWN_COMMUNITIES, "65535:65535", *NUMERIC_SPELLING.values()]:
        _community(community)
    _large_community("4294967295:0:4294967295")


@pytest.mark.parametrize("limit", [0, 7, 9, 10, 20, 99, 100, 255, 999, 1000, 4095, 65535])
def test_decimal_upto_matches_exactly_0_to_limit(limit: int) -> None:
    pattern = re.compile(decimal_upto(limit))
    for number in range(limit * 10 + 20):
        assert bool(pattern.fullmatch(str(number))) is (number <= limit), number
    assert not pattern.fullmatch("0" + str(limit))


def test_decimal_upto_uint32_edges() -> None:
    pattern = re.compile(decimal_upto(4294967295))
    for number in [0, 9, 10, 999999999, 1000000000, 3999999999, 4199999999, 4289999999, 4294967295]:
        assert pattern.fullmatch(str(number)), number
    for number in [4294967296, 4294967300, 4294968000, 4295000000, 5000000000, 9999999999, 10**10]:
        assert not pattern.fullmatch(str(number)), number


def test_label_selector_compiles_to_the_core_selector() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
        }
    )
    assert selector.compiled().matches({"team": "a", "tier": "web"})
    assert not selector.compiled().matches({"team": "a", "tier": "db"})
    assert LabelSelector().compiled().is_everything
    assert compiled(None) is EVERYTHING


def test_metadata_keeps_unknown_fields_and_round_trips() -> None:
    data = manifest("pool")
    data["metadata"] = {
        "name": "p",
        "namespace": "",
        "finalizers": ["x"],
        "resourceVersion": "7",
        "generation": 2,
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "annotations": {"a": "line\n"},
    }
    pool = LoadBalancerIPPool.model_validate(data)
    assert pool.metadata.generation == 2
    assert pool.metadata.resource_version == "7"
    assert pool.to_wire()["metadata"] == data["metadata"]
    assert LoadBalancerIPPool.model_validate(pool.model_dump(by_alias=True, exclude_none=True)) == pool


def test_node_state_round_trips() -> None:
    data = {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "BGPNodeState",
        "metadata": {"name": "node-a"},
        "status": {
            "peers": [
                {
                    "name": "tor-a",
                    "peerAddress": "192.0.2.1",
                    "state": "Established",
                    "since": "2024-01-01T00:00:00Z",
                    "advertised": 12,
                    "lastError": "",
                }
            ]
        },
    }
    state = BGPNodeState.model_validate(data)
    assert state.to_wire() == data


def test_parse_resource_rejects_other_kinds() -> None:
    with pytest.raises(KeyError):
        parse_resource({"apiVersion": "v1", "kind": "Service"})
