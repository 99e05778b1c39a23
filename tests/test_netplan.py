"""The pure planner of `lbipam plan` (lbipam.core.netplan): sizes, layout, refusals, and the
property that a plan never overlaps itself and always holds what was asked."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbipam.core.addresses import cidr_block
from lbipam.core.netplan import (
    RESERVED_PER_NODE,
    RESERVED_PER_RANGE,
    PlanError,
    Request,
    capacity,
    plan,
    pow2_at_least,
    sizes,
)

DOC_BASES = {4: "198.51.100.0/24", 6: "2001:db8::/32"}
BIG_BASES = {4: "10.0.0.0/8", 6: "2001:db8::/32"}


def request(**over: object) -> Request:
    fields: dict[str, object] = {
        "clusters": ("a",),
        "nodes": 100,
        "pods_per_node": 110,
        "services": 1000,
        "lb_ips": 64,
        "headroom": Fraction(2),
    }
    fields.update(over)
    return Request(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 1), (1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (1000, 1024), (1024, 1024)]
)
def test_pow2_at_least(count: int, expected: int) -> None:
    assert pow2_at_least(count) == expected


@pytest.mark.parametrize(
    ("pods", "headroom", "mask"),
    [
        (110, 2, 24),  # Kubernetes' default: max-pods 110 on a /24
        (64, 2, 25),  # GKE's rule: twice the pods, rounded up
        (32, 2, 26),
        (254, 1, 23),  # 254 pods and 3 reserved do not fit 256
        (253, 1, 24),
        (1, 1, 30),  # one pod still needs its 3 reserved neighbours
    ],
    ids=str,
)
def test_node_cidr_size(pods: int, headroom: int, mask: int) -> None:
    size = sizes(request(pods_per_node=pods, headroom=Fraction(headroom)), 4)
    assert size.node_mask == mask
    assert capacity(size)["podsPerNode"] >= pods


def test_sizes_of_the_default_request() -> None:
    size = sizes(request(), 4)
    assert (size.node, size.node_slots, size.services, size.lb) == (256, 256, 2048, 128)
    assert size.pods == 65536
    assert capacity(size) == {"nodes": 256, "podsPerNode": 253, "services": 2046, "lbIPs": 126}


def test_no_lb_range_without_lb_ips() -> None:
    result = plan(request(lb_ips=0), BIG_BASES)
    assert all(f.lb is None for c in result.clusters for f in c.families)


def test_a_small_plan_in_documentation_ranges_is_laid_out_largest_first() -> None:
    req = request(
        clusters=("red", "blue"), nodes=2, pods_per_node=8, services=10, lb_ips=4, headroom=Fraction(1)
    )
    result = plan(req, DOC_BASES)
    red, blue = (c.family(4) for c in result.clusters)
    assert red is not None
    assert blue is not None
    laid = [(str(f.pods), str(f.services), str(f.lb)) for f in (red, blue)]
    # node /28 (8 pods + 3), 2 nodes -> /27; services 10 + 2 -> /28; LB 4 + 2 -> /29
    assert laid == [
        ("198.51.100.0/27", "198.51.100.64/28", "198.51.100.96/29"),
        ("198.51.100.32/27", "198.51.100.80/28", "198.51.100.104/29"),
    ]
    assert red.node_mask == 28
    v6 = result.clusters[0].family(6)
    assert v6 is not None
    assert str(v6.pods) == "2001:db8::/123"
    assert v6.node_mask == 124
    assert result.used(4) == 112


def test_ipv6_node_mask_overrides_the_pod_sizing() -> None:
    result = plan(request(ipv6_node_mask=64, nodes=1000), BIG_BASES)
    v6 = result.clusters[0].family(6)
    assert v6 is not None
    assert v6.node_mask == 64
    assert str(v6.pods) == "2001:db8::/53"


def test_a_single_family_plan() -> None:
    result = plan(request(families=(6,)), BIG_BASES)
    assert [f.version for f in result.clusters[0].families] == [6]
    assert [b.version for b in result.bases] == [6]


@pytest.mark.parametrize(
    ("over", "bases", "words"),
    [
        (
            {"clusters": ("a", "b", "c")},
            {4: "192.0.2.0/24", 6: "2001:db8::/32"},
            ["192.0.2.0/24", "a /14 or larger"],
        ),
        ({"services": 600_000}, BIG_BASES, ["--services 600000", "/12"]),
        ({"ipv6_node_mask": 120, "pods_per_node": 300}, BIG_BASES, ["--ipv6-node-mask 120", "use /119"]),
        ({"clusters": ("Prod",)}, BIG_BASES, ["cluster name 'Prod'"]),
        ({"clusters": ("a", "a")}, BIG_BASES, ["must differ"]),
        ({"clusters": ()}, BIG_BASES, ["--clusters"]),
        ({"nodes": 0}, BIG_BASES, ["--nodes 0"]),
        ({"lb_ips": -1}, BIG_BASES, ["--lb-ips -1"]),
        ({"headroom": Fraction(1, 2)}, BIG_BASES, ["--headroom 0.5"]),
        ({}, {4: "10.0.0.1/8", 6: "2001:db8::/32"}, ["--ipv4-base", "did you mean 10.0.0.0/8"]),
        ({}, {4: "2001:db8::/32", 6: "2001:db8::/32"}, ["--ipv4-base 2001:db8::/32: not an IPv4 CIDR"]),
        ({"families": (4,)}, {6: "2001:db8::/32"}, ["no --ipv4-base"]),
    ],
    ids=[
        "base-too-small",
        "service-cidr-limit",
        "node-mask",
        "name",
        "dup",
        "none",
        "nodes",
        "lb",
        "headroom",
        "host-bits",
        "family",
        "no-base",
    ],
)
def test_impossible_requests_are_refused_with_what_would_work(
    over: dict[str, object], bases: dict[int, str], words: list[str]
) -> None:
    with pytest.raises(PlanError) as err:
        plan(request(**over), bases)
    for word in words:
        assert word in str(err.value)


# ---- the property -------------------------------------------------------------------------------
requests = st.builds(
    request,
    clusters=st.integers(1, 6).map(lambda n: tuple(f"c{i}" for i in range(n))),
    nodes=st.integers(1, 3000),
    pods_per_node=st.integers(1, 600),
    services=st.integers(1, 20_000),
    lb_ips=st.integers(0, 3000),
    headroom=st.sampled_from([Fraction(1), Fraction(3, 2), Fraction(2), Fraction(3)]),
    ipv6_node_mask=st.sampled_from([None, 64, 112]),
)


@settings(max_examples=300, deadline=None)
@given(req=requests, v4_prefix=st.integers(8, 20))
def test_every_plan_is_disjoint_aligned_inside_its_base_and_big_enough(req: Request, v4_prefix: int) -> None:
    bases = {4: str(cidr_block(f"10.0.0.0/{v4_prefix}")), 6: "2001:db8::/32"}
    try:
        result = plan(req, bases)
    except PlanError as err:
        # Refused only when it truly cannot be done: too big for the base, or a Kubernetes limit.
        need = {v: sizes(req, v).total * len(req.clusters) for v in (4, 6)}
        text = str(err)
        assert need[4] > 1 << (32 - v4_prefix) or "--ipv6-node-mask" in text or "service CIDR" in text, text
        return
    for version, base in zip((4, 6), result.bases, strict=True):
        size = sizes(req, version)
        blocks = [b for c in result.clusters if (f := c.family(version)) for _, b in f.ranges()]
        assert all(base.first <= b.first and b.last <= base.last for b in blocks)
        assert all(b.first % b.size == 0 and str(cidr_block(str(b))) == str(b) for b in blocks)
        for x, y in itertools.combinations(blocks, 2):
            assert not x.overlaps(y), (x, y)
        room = capacity(size)
        assert room["nodes"] >= req.nodes * req.headroom
        assert room["podsPerNode"] >= req.pods_per_node
        assert room["services"] >= req.services
        assert room["lbIPs"] >= req.lb_ips
        assert size.node >= req.pods_per_node + RESERVED_PER_NODE
        assert size.services >= req.services + RESERVED_PER_RANGE
        assert result.used(version) == sum(b.size for b in blocks)
