"""The operator's metrics: each method counts in its own series, read back from the exposition text the
endpoint serves; two Metrics share nothing (no global registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from prometheus_client import generate_latest

from cairn_operator.metrics import Metrics
from tests.helpers import cycles_at, metric_value, scrape


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.close()


def text(m: Metrics) -> str:
    return generate_latest(m.registry).decode()


@pytest.mark.parametrize(
    ("call", "line"),
    [
        (lambda m: m.run_cycle("ns1", "r1"), 'cairn_reconcile_cycles_total{kind="Run",name="r1",namespace="ns1"} 2.0'),
        (
            lambda m: m.rx_cycle("ns1", "x1"),
            'cairn_reconcile_cycles_total{kind="Reexecution",name="x1",namespace="ns1"} 2.0',
        ),
        (lambda m: m.status_write("Run"), 'cairn_status_writes_total{kind="Run"} 2.0'),
        (lambda m: m.pod_created("ns2"), 'cairn_pods_created_total{namespace="ns2"} 2.0'),
        (lambda m: m.api_refusal("Pod", "Forbidden"), 'cairn_api_refusals_total{kind="Pod",reason="Forbidden"} 2.0'),
    ],
)
def test_each_method_counts_in_its_series(metrics: Metrics, call: Callable[[Metrics], None], line: str) -> None:
    call(metrics)
    call(metrics)
    lines = text(metrics).splitlines()
    assert line in lines
    counted = [x for x in lines if x.endswith(" 2.0") and not x.startswith("#")]
    assert counted == [line]  # nothing else was counted


def test_cycles_are_counted_per_object(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.run_cycle("a", "r")
    metrics.run_cycle("b", "r")
    metrics.rx_cycle("a", "r")
    exposition = text(metrics)
    assert metric_value(exposition, "cairn_reconcile_cycles_total", kind="Run", namespace="a", name="r") == 3
    assert metric_value(exposition, "cairn_reconcile_cycles_total", kind="Run", namespace="b", name="r") == 1
    assert metric_value(exposition, "cairn_reconcile_cycles_total", kind="Reexecution", namespace="a", name="r") == 1
    assert metric_value(exposition, "cairn_reconcile_cycles_total", kind="Run", namespace="a", name="other") == 0


def test_forget_drops_an_objects_series(metrics: Metrics) -> None:
    metrics.run_cycle("a", "gone")
    metrics.run_cycle("a", "kept")
    metrics.forget("Run", "a", "gone")
    metrics.forget("Run", "a", "never-counted")  # nothing to drop: no error
    exposition = text(metrics)
    assert 'name="gone"' not in exposition and 'name="kept"' in exposition


def test_the_endpoint_serves_the_counters_on_the_port_it_bound(metrics: Metrics) -> None:
    port = metrics.serve("127.0.0.1", 0)
    assert port > 0
    metrics.run_cycle("ns", "r")
    metrics.run_cycle("ns", "r")
    url = f"http://127.0.0.1:{port}/metrics"
    assert cycles_at(url, "Run", "ns", "r") == 2
    assert "# TYPE cairn_status_writes_total counter" in scrape(url)
    with pytest.raises(RuntimeError, match="served already"):
        metrics.serve("127.0.0.1", 0)


def test_two_operators_in_one_process_share_no_counter(metrics: Metrics) -> None:
    other = Metrics()
    try:
        port = metrics.serve("127.0.0.1", 0)
        other_port = other.serve("127.0.0.1", 0)
        other.run_cycle("ns", "r")
        assert cycles_at(f"http://127.0.0.1:{other_port}/metrics", "Run", "ns", "r") == 1
        assert cycles_at(f"http://127.0.0.1:{port}/metrics", "Run", "ns", "r") == 0
    finally:
        other.close()
