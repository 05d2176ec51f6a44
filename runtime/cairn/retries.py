"""Retry policies: how many times a failed step is tried again, and how long to wait before each retry.

Both executors ask a policy the same two things (`RetryRule`): `max_retries`, and `delay(attempt, rand)`
after attempt `attempt` (1 for the first) failed, `rand` drawing a float in [0, 1) for jitter. Three
policies satisfy it:

- `RetryPolicy`: Dagster's (``@op(retry_policy=RetryPolicy(max_retries=3, delay=0.2,
  backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS))``), with Dagster's arithmetic: the delay after
  attempt n is `delay` (no backoff), ``n * delay`` (LINEAR) or ``(2**n - 1) * delay`` (EXPONENTIAL),
  then with FULL jitter ``rand() * that`` and with PLUS_MINUS ``that + (2 * rand() * delay) - delay``.
- `RetryRequested`: raised by an op's body, a retry asked for by the op itself (Dagster's name and
  arguments); `requested_rule` makes it a rule.
- `Failure`: raised by an op's body, a failure with a description and metadata (Dagster's); with
  ``allow_retries=False`` the op's retry policy does not apply. `rule_for` is the one decision: which rule
  (if any) retries an attempt that raised.
- `ExponentialRetries`: a Job's ``retries`` on a cluster (``limit`` and ``backoff{durationSeconds,
  factor, maxDurationSeconds}``): ``min(cap, base * factor**(n - 1))``, no jitter.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cairn.errors import DagsterError, DefinitionError

Rand = Callable[[], float]


class RetryRule(Protocol):
    """What the run machine asks of a retry policy."""

    @property
    def max_retries(self) -> int: ...

    def delay(self, attempt: int, rand: Rand) -> float:
        """Seconds to wait before the next attempt, after attempt `attempt` (1-based) failed."""
        ...


class Backoff(enum.Enum):
    """How the delay grows with the attempt number n: LINEAR ``n * delay``, EXPONENTIAL ``(2**n - 1) * delay``."""

    LINEAR = "LINEAR"
    EXPONENTIAL = "EXPONENTIAL"


class Jitter(enum.Enum):
    """A random change of the delay, after backoff: FULL ``rand() * d``, PLUS_MINUS ``d +/- delay``."""

    FULL = "FULL"
    PLUS_MINUS = "PLUS_MINUS"


def calculate_delay(
    attempt_num: int, backoff: Backoff | None, jitter: Jitter | None, base_delay: float, rand: Rand
) -> float:
    """Dagster's delay after attempt `attempt_num` failed (its `calculate_delay`, with `rand` injected)."""
    if backoff is Backoff.EXPONENTIAL:
        delay = float((2**attempt_num) - 1) * base_delay
    elif backoff is Backoff.LINEAR:
        delay = base_delay * float(attempt_num)
    else:
        delay = base_delay
    if jitter is Jitter.FULL:
        delay = rand() * delay
    elif jitter is Jitter.PLUS_MINUS:
        delay = delay + ((2 * (rand() * base_delay)) - base_delay)
    return delay


@dataclass(frozen=True)
class RetryPolicy:
    """Dagster's op retry policy: retry a failed op up to `max_retries` times, waiting `delay` seconds
    (modulated by `backoff` and `jitter`) before each retry. Set per op (``@op(retry_policy=...)``) or
    for a job's ops (``@job(op_retry_policy=...)``; an op's own wins)."""

    max_retries: int = 1
    delay: float | None = None
    backoff: Backoff | None = None
    jitter: Jitter | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise DefinitionError(f"RetryPolicy(max_retries={self.max_retries!r}): a number of retries, 0 or more")
        if self.delay is not None and (isinstance(self.delay, bool) or not isinstance(self.delay, int | float)):
            raise DefinitionError(f"RetryPolicy(delay={self.delay!r}): seconds, a number")
        if self.backoff is not None and self.delay is None:
            raise DefinitionError("Can not set backoff on RetryPolicy without also setting delay")
        if self.jitter is not None and self.delay is None:
            raise DefinitionError("Can not set jitter on RetryPolicy without also setting delay")

    def calculate_delay(self, attempt_num: int, rand: Rand | None = None) -> float:
        """Dagster's ``policy.calculate_delay(attempt_num)``: the delay after attempt `attempt_num` failed;
        jitter draws from `rand` (default: the `random` module's)."""
        return calculate_delay(attempt_num, self.backoff, self.jitter, self.delay or 0, rand or random.random)

    def rule(self) -> RetryRule:
        """This policy as the run machine's rule (the field `delay` shadows the protocol's method)."""
        return _PolicyRule(self)


@dataclass(frozen=True)
class _PolicyRule:
    policy: RetryPolicy

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    def delay(self, attempt: int, rand: Rand) -> float:
        return self.policy.calculate_delay(attempt, rand)


class RetryRequested(Exception):
    """Raised by an op's body to have its step tried again: up to `max_retries` retries in all, each after
    `seconds_to_wait` seconds (Dagster's ``raise RetryRequested(max_retries=2, seconds_to_wait=1) from exc``).
    An op's retry policy does not apply to it."""

    def __init__(self, max_retries: int | None = 1, seconds_to_wait: float | None = None) -> None:
        super().__init__()
        self.max_retries = 1 if max_retries is None else max_retries
        self.seconds_to_wait = seconds_to_wait


class Failure(Exception):
    """Raised by an op's body: the step fails with `description` and `metadata` (Dagster's ``raise
    Failure("no rows", metadata={"table": "t"})``). ``allow_retries=False``: the op's retry policy does not
    apply, the step fails at once (default True: a retry policy retries it like any error)."""

    def __init__(
        self,
        description: str | None = None,
        metadata: Mapping[str, object] | None = None,
        allow_retries: bool | None = None,
    ) -> None:
        super().__init__(description)
        if description is not None and not isinstance(description, str):
            raise TypeError(f"Failure(description={description!r}): a string or None")
        if metadata is not None and not (isinstance(metadata, Mapping) and all(isinstance(k, str) for k in metadata)):
            raise TypeError(f"Failure(metadata={metadata!r}): a mapping of string labels to values, or None")
        if allow_retries is not None and not isinstance(allow_retries, bool):
            raise TypeError(f"Failure(allow_retries={allow_retries!r}): True, False or None")
        self.description = description
        self.metadata: dict[str, object] = dict(metadata or {})
        self.allow_retries = True if allow_retries is None else allow_retries


def rule_for(exc: BaseException, policy: RetryPolicy | None) -> RetryRule | None:
    """The rule that retries an attempt which raised `exc`, under the op's `policy` (None: not retried).

    As Dagster decides it: a `RetryRequested` retries by its own numbers (the policy does not apply); a
    Dagster framework error (`DagsterError`) is not retried; a `Failure(allow_retries=False)` is not
    retried; any other exception is retried per the policy; an interrupt (not an `Exception`) is not."""
    if isinstance(exc, RetryRequested):
        return requested_rule(exc)
    if policy is None or not isinstance(exc, Exception) or isinstance(exc, DagsterError):
        return None
    if isinstance(exc, Failure) and not exc.allow_retries:
        return None
    return policy.rule()


@dataclass(frozen=True)
class FixedRetries:
    """A rule of retries each after the same delay: what a `RetryRequested` asks for."""

    max_retries: int
    seconds: float = 0.0

    def delay(self, attempt: int, rand: Rand) -> float:
        return self.seconds


def requested_rule(request: RetryRequested) -> FixedRetries:
    return FixedRetries(request.max_retries, float(request.seconds_to_wait or 0))


@dataclass(frozen=True)
class ExponentialRetries:
    """A cluster Job's retries: `max_retries` (its ``limit``), the delay after attempt n
    ``min(cap, base * factor**(n - 1))``."""

    max_retries: int
    base: float
    factor: float
    cap: float

    def delay(self, attempt: int, rand: Rand) -> float:
        return float(min(self.cap, self.base * (self.factor ** max(0, attempt - 1))))
