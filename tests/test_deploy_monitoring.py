"""deploy/monitoring/ (the kustomize Component deploy/with-monitoring/ adds to the workloads): the
ServiceMonitor scrapes both metrics Services, and the alerts of the PrometheusRule are well formed
and watch what lbipam really exports.

kubernetes-validate has no schema for the Prometheus Operator's kinds, so their structure is
checked here field by field. Every alert expression is checked for shape (balanced brackets, a
threshold, only metric names, label matchers and groupings that the controller's and the speaker's
registries (lbipam.observe.metrics) really export, scraped from a controller running against the
embedded API server) and, where the `promql_parser` package is installed, parsed as PromQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDROptions
from lbipam.k8s.client import connect
from lbipam.k8s.resources import LBPOOLS, NODES, PODCIDRPOOLS, SERVICES
from lbipam.observe.metrics import PeerMetrics, controller_registry, speaker_registry
from tests.deploy_harness import MONITORED, WORKLOADS, Obj, find
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
from tests.podcidr_harness import node, pcpool

# Labels the Prometheus Operator adds to every series it scrapes through a ServiceMonitor.
TARGET_LABELS = {"pod", "namespace", "service", "instance", "job", "container", "endpoint"}
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}|\b(lbipam_[a-z0-9_]+)\b")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def alerts() -> list[Obj]:
    groups = find("PrometheusRule", "lbipam", MONITORED)["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value}) of each vector selector (`=` matchers only carry values)."""
    found = []
    for m in SELECTOR.finditer(expr):
        name = m[1] or m[3]
        if name in ("by", "without", "on", "ignoring"):
            continue
        found.append((name, {k: v for k, op, v in MATCHER.findall(m[2] or "") if op == "="}))
    return found


def groupings(expr: str) -> set[str]:
    return {label.strip() for m in GROUPING.finditer(expr) for label in m[1].split(",") if label.strip()}


def balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "}": "{", "]": "["}
    for ch in re.sub(r'"[^"]*"', '""', expr):
        if ch in "({[":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_alerts_cover_pools_podcidrs_and_bgp_sessions() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "LBIPAMPoolAlmostFull",
        "LBIPAMPoolExhausted",
        "LBIPAMPodCIDRPoolExhausted",
        "LBIPAMBGPSessionDown",
    }
    metrics = {name for a in alerts() for name, _ in selectors(a["expr"])}
    assert metrics == {
        "lbipam_pool_addresses",
        "lbipam_pool_exhausted",
        "lbipam_podcidr_pool_cidrs",
        "lbipam_podcidr_pool_exhausted",
        "lbipam_bgp_session_up",
    }


@pytest.mark.parametrize(
    "name", ["LBIPAMPoolExhausted", "LBIPAMPodCIDRPoolExhausted", "LBIPAMPoolAlmostFull"]
)
def test_pool_alerts_are_per_pool_and_family(name: str) -> None:
    """A dual-stack pool out of IPv4 alerts for ipv4 alone (Exhausted names the family); an
    almost-full family is not also reported while that family is exhausted."""
    (alert,) = [a for a in alerts() if a["alert"] == name]
    assert groupings(alert["expr"]) == {"pool", "family"}
    assert "{{ $labels.family }}" in alert["annotations"]["summary"]


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_rule_shape(alert: Obj) -> None:
    assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, alert["alert"]
    assert re.fullmatch(r"LBIPAM[A-Z][A-Za-z0-9]+", alert["alert"])
    assert re.fullmatch(r"\d+[smh]", alert["for"])
    assert alert["labels"]["severity"] in ("warning", "critical")
    assert {"summary", "description"} <= set(alert["annotations"])
    expr = alert["expr"]
    assert balanced(expr), f"{alert['alert']}: unbalanced brackets in {expr!r}"
    assert selectors(expr), f"{alert['alert']}: no metric in {expr!r}"
    assert re.search(r"(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$", expr.strip().splitlines()[-1]), "no threshold"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_expression_parses_as_promql(alert: Obj) -> None:
    promql = pytest.importorskip("promql_parser", reason="promql-parser is not installed")
    try:
        promql.parse(alert["expr"])
    except ValueError as err:
        pytest.fail(f"{alert['alert']}: not PromQL: {err}")


def test_shape_checks_catch_broken_expressions() -> None:
    assert not balanced('sum(rate(x{a="("}[5m])')
    assert balanced('max by (pool) (lbipam_pool_exhausted{pool=")"}) == 1')
    assert selectors('max by (pool, family) (lbipam_pool_addresses{state="used"}) / lbipam_x') == [
        ("lbipam_pool_addresses", {"state": "used"}),
        ("lbipam_x", {}),
    ]
    assert groupings("a / on (pool) group_left (family) b") == {"pool", "family"}


def test_service_monitor_scrapes_both_metrics_services() -> None:
    monitor = find("ServiceMonitor", "lbipam", MONITORED)
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    for component in WORKLOADS:
        service = find("Service", f"lbipam-{component}-metrics", MONITORED)
        assert selector.items() <= service["metadata"]["labels"].items(), component
        assert ports <= {p["name"] for p in service["spec"]["ports"]}, component


async def exported_metrics(kubeconfig: Path) -> dict[str, dict[str, set[str]]]:
    """What the controller (LB-IPAM and PodCIDR, each with a pool in use) and the speaker export
    through lbipam.observe.metrics: metric name -> label -> the values seen."""
    kube = await connect(str(kubeconfig))
    await kube.create(LBPOOLS, pool("lb", "192.0.2.0/30"))
    await kube.create(SERVICES, service("web"))
    await kube.create(PODCIDRPOOLS, pcpool("pods", (["198.51.100.0/24"], 25)))
    await kube.create(NODES, node("n1"))
    settings = PodCIDRSettings("node-annotations", options=PodCIDROptions(reuse_delay=0.0))
    app = ControllerApp(kube, LBOptions(reuse_delay=0.0), LeaderOptions(enabled=False), settings)
    task = asyncio.create_task(app.run())
    registry = controller_registry(app)

    def scrape() -> str | None:  # once both planners have their pool
        text = generate_latest(registry).decode()
        return text if "lbipam_pool_addresses{" in text and "lbipam_podcidr_pool_cidrs{" in text else None

    try:
        text = str(await eventually(scrape, timeout=20))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kube.close()
    text += generate_latest(speaker_registry(lambda: {"tor-a": PeerMetrics(up=True, routes=1)})).decode()
    exported: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = exported.setdefault(family.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
    return exported


async def test_alerts_use_the_metrics_lbipam_exports(kubeconfig: Path, lbipam_crds: list[str]) -> None:
    exported = await exported_metrics(kubeconfig)
    for alert in alerts():
        name, expr = alert["alert"], alert["expr"]
        labels = set(TARGET_LABELS)
        for metric, matchers in selectors(expr):
            assert metric in exported, f"{name}: lbipam exports no {metric}"
            labels |= set(exported[metric])
            for label, value in matchers.items():
                assert value in exported[metric].get(label, ()), f"{name}: {metric} has no {label}={value!r}"
        assert groupings(expr) <= labels, f"{name}: groups by labels its metrics lack"
        used = set(re.findall(r"\$labels\.(\w+)", " ".join(alert["annotations"].values())))
        assert used <= labels, f"{name}: annotations use labels the series lack: {used - labels}"
