"""Unit tests of the pieces of lbipam.observe and the JSON log format: result labels and counting,
the speaker's collector (exact exposition), the endpoints' behaviour on a failing collector and
content negotiation (real HTTP on 127.0.0.1), and JsonFormatter."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

import aiohttp
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from lbipam.core.lbplanner import PlannedEvent
from lbipam.core.lbviews import CurrentCondition
from lbipam.k8s.logs import JsonFormatter, KVLog
from lbipam.observe.metrics import PeerMetrics, SpeakerCollector, speaker_registry
from lbipam.observe.results import Results, label
from lbipam.observe.server import ObserveServer

NORMAL, WARNING = "Normal", "Warning"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("IPAllocated", "allocated"),
        ("IPReleased", "released"),
        ("CIDRAssigned", "allocated"),
        ("CIDRReleased", "released"),
        ("NoPool", "noPool"),
        ("OutOfIPs", "outOfIPs"),
        ("PoolSelectorMismatch", "poolSelectorMismatch"),
        ("CIDRNotAvailable", "cidrNotAvailable"),
        ("OutsidePools", "outsidePools"),
        ("ABC", "abc"),
    ],
)
def test_label(reason: str, expected: str) -> None:
    assert label(reason) == expected


def ev(type_: str, reason: str) -> PlannedEvent:
    return PlannedEvent(type_, reason, "note")


FAILED = CurrentCondition("False", "OutOfIPs", "no free IPv4 address")
SATISFIED = CurrentCondition("True", "Satisfied", "192.0.2.1")


@pytest.mark.parametrize(
    ("events", "condition", "expected"),
    [
        pytest.param([ev(NORMAL, "IPAllocated")] * 2, SATISFIED, {"allocated": 2}, id="dual-stack"),
        pytest.param([ev(WARNING, "AllocationFailed")], FAILED, {"outOfIPs": 1}, id="new-failure"),
        pytest.param([], FAILED, {}, id="failing-again-no-event"),
        pytest.param(
            [ev(NORMAL, "IPReleased"), ev(WARNING, "AllocationFailed")],
            CurrentCondition("False", "NoPool", "pool gone"),
            {"released": 1, "noPool": 1},
            id="lost-its-pool",
        ),
        pytest.param(
            [ev(WARNING, "AllocationFailed"), ev(NORMAL, "IPAllocated")],
            SATISFIED,
            {"allocated": 1},
            id="warning-but-satisfied",
        ),
        pytest.param([ev(NORMAL, "CIDRReleased")], None, {"released": 1}, id="node-gone"),
    ],
)
def test_results_count(
    events: list[PlannedEvent], condition: CurrentCondition | None, expected: Mapping[str, int]
) -> None:
    results = Results()
    results.count(events, condition)
    assert dict(results) == expected


def test_speaker_exposition() -> None:
    peers = {"tor-b": PeerMetrics(up=False, routes=0), "tor-a": PeerMetrics(up=True, routes=12)}
    registry = CollectorRegistry()
    registry.register(SpeakerCollector(lambda: peers))
    assert generate_latest(registry).decode() == (
        "# HELP lbipam_bgp_session_up 1 while the BGP session is Established, else 0\n"
        "# TYPE lbipam_bgp_session_up gauge\n"
        'lbipam_bgp_session_up{peer="tor-a"} 1.0\n'
        'lbipam_bgp_session_up{peer="tor-b"} 0.0\n'
        "# HELP lbipam_bgp_routes_announced routes this node announces to the peer\n"
        "# TYPE lbipam_bgp_routes_announced gauge\n"
        'lbipam_bgp_routes_announced{peer="tor-a"} 12.0\n'
        'lbipam_bgp_routes_announced{peer="tor-b"} 0.0\n'
        "# HELP lbipam_bfd_session_state "
        "1 for the BFD session's current state (Up, Down, Init, AdminDown), else 0\n"
        "# TYPE lbipam_bfd_session_state gauge\n"
        "# HELP lbipam_bfd_state_changes_total BFD session state changes, by the state entered\n"
        "# TYPE lbipam_bfd_state_changes_total counter\n"
    )
    del peers["tor-b"]  # read at each scrape: a peer removed is gone from the next one
    assert 'peer="tor-b"' not in generate_latest(registry).decode()


def test_bfd_series_only_for_peers_with_bfd() -> None:
    peers = {
        "tor-a": PeerMetrics(up=False, routes=0, bfd="Down", bfd_changes={"Up": 1, "Down": 2, "Init": 1}),
        "tor-b": PeerMetrics(up=True, routes=3),
    }
    registry = CollectorRegistry()
    registry.register(SpeakerCollector(lambda: peers))
    lines = [
        line for line in generate_latest(registry).decode().splitlines() if line.startswith("lbipam_bfd")
    ]
    assert lines == [
        'lbipam_bfd_session_state{peer="tor-a",state="Up"} 0.0',
        'lbipam_bfd_session_state{peer="tor-a",state="Down"} 1.0',
        'lbipam_bfd_session_state{peer="tor-a",state="Init"} 0.0',
        'lbipam_bfd_session_state{peer="tor-a",state="AdminDown"} 0.0',
        'lbipam_bfd_state_changes_total{peer="tor-a",state="Up"} 1.0',
        'lbipam_bfd_state_changes_total{peer="tor-a",state="Down"} 2.0',
        'lbipam_bfd_state_changes_total{peer="tor-a",state="Init"} 1.0',
        'lbipam_bfd_state_changes_total{peer="tor-a",state="AdminDown"} 0.0',
    ]


class Broken:
    def collect(self) -> list[object]:
        raise RuntimeError("planner in pieces")


async def test_endpoints_on_their_own() -> None:
    """A registry per process: two servers, two registries, in one process. /readyz follows
    `ready()`; OpenMetrics when asked; a failing collector makes /metrics a 500 that says why,
    and the probes keep answering."""
    state = {"ready": False}
    speaker = ObserveServer(speaker_registry(lambda: {"tor-a": PeerMetrics(True, 3)}), lambda: state["ready"])
    broken_registry = CollectorRegistry()
    broken_registry.register(Broken())  # type: ignore[arg-type]
    broken = ObserveServer(broken_registry, lambda: True)
    await speaker.start()
    await broken.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{speaker.url}/readyz") as r:
                assert (r.status, await r.text()) == (503, "not ready\n")
            state["ready"] = True
            async with session.get(f"{speaker.url}/readyz") as r:
                assert (r.status, await r.text()) == (200, "ok\n")
            async with session.get(f"{speaker.url}/metrics") as r:
                text = await r.text()
            assert 'lbipam_bgp_routes_announced{peer="tor-a"} 3.0\n' in text
            assert "process_cpu_seconds_total" in text or sys.platform != "linux"
            headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with session.get(f"{speaker.url}/metrics", headers=headers) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await r.text()).endswith("# EOF\n")
            async with session.get(f"{broken.url}/metrics") as r:
                assert r.status == 500
                assert "planner in pieces" in await r.text()
            async with session.get(f"{broken.url}/healthz") as r:
                assert r.status == 200
    finally:
        await speaker.stop()
        await broken.stop()


def record_of(log: KVLog, text: str, **fields: object) -> logging.LogRecord:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    log.logger.addHandler(handler)
    log.logger.setLevel(logging.DEBUG)
    try:
        log.info(text, **fields)
    finally:
        log.logger.removeHandler(handler)
    return records[0]


def test_json_formatter_kvlog() -> None:
    log = KVLog("lbipam.test.json", kind="Service", name="web")
    record = record_of(
        log, "ip allocated", ip="192.0.2.7", count=3, ok=True, gone=None, logger="x", pool=("a",)
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    got = json.loads(line)
    assert got.pop("time").endswith("Z")
    assert got == {
        "level": "info",
        "logger": "lbipam.test.json",
        "msg": "ip allocated",
        "kind": "Service",
        "name": "web",
        "ip": "192.0.2.7",
        "count": 3,
        "ok": True,
        "logger_": "x",  # a field named like a base key: both kept
        "pool": "('a',)",
    }
    assert record.getMessage().startswith("ip allocated kind=Service name=web ip=192.0.2.7")  # text unchanged


def test_json_formatter_other_loggers_and_tracebacks() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info)
    got = json.loads(JsonFormatter().format(record))
    assert (got["level"], got["logger"], got["msg"]) == ("error", "aiohttp.server", "failed x")
    assert got["traceback"].startswith("Traceback")
    assert "ValueError: bad" in got["traceback"]
