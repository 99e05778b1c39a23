"""The CRD-backed pool watermark: stocked above what is used, trimmed above the maximum."""

from __future__ import annotations

import pytest

from lbipam.core.ippool import pool_changes


@pytest.mark.parametrize(
    ("pool", "used", "pre", "above", "add", "remove"),
    [
        pytest.param([], [], 3, 2, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], [], id="empty-pool-stocked"),
        pytest.param(
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"], ["10.0.0.1", "10.0.0.2"], 3, 2,
            ["10.0.0.4", "10.0.0.5"], [], id="use-pulls-more-in",
        ),
        pytest.param(
            [f"10.0.0.{i}" for i in range(1, 11)], ["10.0.0.1"], 3, 2,
            [], ["10.0.0.10", "10.0.0.9", "10.0.0.8", "10.0.0.7"], id="trim-highest-free",
        ),
        pytest.param(
            [f"10.0.0.{i}" for i in range(1, 11)], [f"10.0.0.{i}" for i in range(5, 11)], 1, 0,
            [], ["10.0.0.4", "10.0.0.3", "10.0.0.2"], id="used-never-removed",
        ),
        pytest.param(["10.0.0.1"], ["10.0.0.1"], 0, 0, [], [], id="nothing-to-do"),
    ],
)  # fmt: skip
def test_watermarks(
    pool: list[str], used: list[str], pre: int, above: int, add: list[str], remove: list[str]
) -> None:
    assert pool_changes("10.0.0.0/24", pool, used, pre, above) == (add, remove)


def test_a_full_cidr_stops_adding() -> None:
    add, _ = pool_changes("10.0.0.0/30", [], [], 8, 0)
    assert add == ["10.0.0.1", "10.0.0.2"]


def test_ipv6_uses_every_address() -> None:
    assert pool_changes("fd00::/126", [], [], 8, 0)[0] == ["fd00::", "fd00::1", "fd00::2", "fd00::3"]
