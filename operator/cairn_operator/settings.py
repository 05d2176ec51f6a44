"""The operator's settings, parsed once in `__main__` from its command line and environment (the chart
sets the environment); nothing else in the operator reads either."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn_operator.resources import STEP_SERVICE_ACCOUNT


class SettingsError(ValueError):
    """A setting has a value the operator cannot use: says which and what it takes."""


@dataclass(frozen=True)
class Settings:
    max_pods: int = 100  # CAIRN_MAX_PODS: unfinished step pods operator-wide
    workers: int = 8  # CAIRN_WORKERS: threads running reconcile cycles
    creators: int = 8  # threads creating one cycle's pods at once
    step_account: str = STEP_SERVICE_ACCOUNT  # CAIRN_STEP_SERVICE_ACCOUNT: what step pods run as by default
    resync: float = 1.0  # seconds between a live Run's cycles when nothing happens (the safety net)
    wait_resync: float = 5.0  # CAIRN_WAIT_RESYNC: checks of a Run waiting for its Job or Secret
    rx_resync: float = 15.0  # CAIRN_RX_RESYNC: checks of a live Reexecution when no event comes
    secret_ttl: float = 5.0  # seconds a storage Secret read is reused (a rotated key is seen after it)
    faults: frozenset[str] = frozenset()  # CAIRN_FAULT: the crash-window test hook (never in production)
    fault_namespace: str | None = None  # CAIRN_FAULT_NAMESPACE
    metrics: tuple[str, int] | None = None  # --metrics HOST:PORT: Prometheus metrics served there


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number: set it to a number >= {minimum:g}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} is below {minimum:g}: set it to a number >= {minimum:g}")
    return value


def parse_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` (port 0: any free port); '' turns it off."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"--metrics {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8081 (or '' for none)")
    return host or "0.0.0.0", int(port)


def from_environment(env: Mapping[str, str], metrics: str = "") -> Settings:
    """The settings from the operator's environment (the names above) and its `--metrics` flag."""
    faults = frozenset(f.strip() for f in env.get("CAIRN_FAULT", "").split(",") if f.strip())
    return Settings(
        max_pods=int(_number(env, "CAIRN_MAX_PODS", 100, 1)),
        workers=int(_number(env, "CAIRN_WORKERS", 8, 1)),
        step_account=env.get("CAIRN_STEP_SERVICE_ACCOUNT") or STEP_SERVICE_ACCOUNT,
        wait_resync=_number(env, "CAIRN_WAIT_RESYNC", 5.0, 0.1),
        rx_resync=_number(env, "CAIRN_RX_RESYNC", 15.0, 0.1),
        faults=faults,
        fault_namespace=env.get("CAIRN_FAULT_NAMESPACE") or None,
        metrics=parse_address(metrics),
    )
