"""Hooks as Dagster defines them: `@success_hook` and `@failure_hook` make a `HookDefinition`, attached to every
op of a job (``@job(hooks={...})``) or to one use of an op (``my_op.with_hooks({...})()``), and called with a
`HookContext` once the step's outcome is final.

When hooks run (Dagster's rules, observed with Dagster 1.13): after the step's op returned and its outputs were
stored (success hooks) or after it raised (failure hooks), in the step's process, with the step's resources; a
failed attempt that will be retried triggers neither (every hook is HOOK_SKIPPED); a hook that raises is
HOOK_ERRORED and does not fail the step or the run; a hook of the other kind is HOOK_SKIPPED.
"""

from __future__ import annotations

import enum
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.errors import DefinitionError
from cairn.retries import rule_for

#: The names a hook function's first parameter may have (Dagster's: the context).
_CONTEXT_NAMES = ("context", "_", "_context", "context_")


class HookKind(enum.Enum):
    """When a hook fires: on success, on failure, or (a bare `HookDefinition`) on either."""

    SUCCESS = "success"
    FAILURE = "failure"
    ANY = "any"


class HookOutcome(enum.Enum):
    """What happened to one hook of a step, as Dagster's event types name it."""

    COMPLETED = "HOOK_COMPLETED"
    ERRORED = "HOOK_ERRORED"
    SKIPPED = "HOOK_SKIPPED"


class HookDefinition:
    """A hook: `hook_fn(context, event_list)` (``@success_hook``/``@failure_hook`` build it from a function of
    the context alone), with the resources it requires."""

    def __init__(
        self,
        *,
        name: str,
        hook_fn: Callable[..., Any],
        required_resource_keys: Iterable[str] | None = None,
        decorated_fn: Callable[..., Any] | None = None,
        kind: HookKind = HookKind.ANY,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"HookDefinition: name must be a non-empty string, got {name!r}")
        self.name = name
        self.hook_fn = hook_fn
        self.required_resource_keys = frozenset(required_resource_keys or ())
        self.decorated_fn = decorated_fn
        self.kind = kind

    def __repr__(self) -> str:
        return f"<HookDefinition {self.name} ({self.kind.value})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """On a job (``@my_hook`` above ``@job``): the job with this hook on every op, as Dagster. Else call the
        hook's function directly (a test): ``my_hook(build_hook_context(...))``."""
        from cairn.definitions import JobDefinition

        if len(args) == 1 and not kwargs and isinstance(args[0], JobDefinition):
            return args[0].with_hooks({self})
        if self.decorated_fn is not None:
            return self.decorated_fn(*args, **kwargs)
        return self.hook_fn(*args, **kwargs)

    def fires(self, succeeded: bool) -> bool:
        """Whether this hook runs for a step that succeeded (True) or failed (False)."""
        return pure_fires(self.kind, succeeded)


def pure_fires(kind: HookKind, succeeded: bool) -> bool:
    return kind is HookKind.ANY or (kind is HookKind.SUCCESS) == succeeded


def _check_hook_fn(fn: Callable[..., Any]) -> None:
    """Dagster's rule: a hook function's first positional parameter is the context (``context`` or ``_``)."""
    params = list(inspect.signature(fn).parameters.values())
    first = params[0] if params else None
    if (
        first is None
        or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
        or (first.name not in _CONTEXT_NAMES)
    ):
        raise DefinitionError(
            f"'{getattr(fn, '__name__', fn)}' decorated function does not have required positional parameter "
            f"'context'. Hook functions should only have keyword arguments that match input names and a first "
            f"positional parameter named 'context' and a second positional parameter named 'event_list'."
        )


def _hook(
    fn: Callable[..., Any], name: str | None, required_resource_keys: Iterable[str] | None, kind: HookKind
) -> HookDefinition:
    _check_hook_fn(fn)
    takes_events = len(inspect.signature(fn).parameters) > 1

    def hook_fn(context: Any, event_list: Sequence[Any]) -> Any:
        return fn(context, event_list) if takes_events else fn(context)

    return HookDefinition(
        name=name or fn.__name__,
        hook_fn=hook_fn,
        required_resource_keys=required_resource_keys,
        decorated_fn=fn,
        kind=kind,
    )


@typing.overload
def success_hook(hook_fn: Callable[..., Any]) -> HookDefinition: ...


@typing.overload
def success_hook(
    hook_fn: None = None, *, name: str | None = None, required_resource_keys: Iterable[str] | None = None
) -> Callable[[Callable[..., Any]], HookDefinition]: ...


def success_hook(
    hook_fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    required_resource_keys: Iterable[str] | None = None,
) -> HookDefinition | Callable[[Callable[..., Any]], HookDefinition]:
    """A hook that runs after a step succeeded: ``@success_hook`` or ``@success_hook(name=...,
    required_resource_keys={...})`` on a function of its `HookContext`."""
    if hook_fn is not None:
        return _hook(hook_fn, name, required_resource_keys, HookKind.SUCCESS)
    return lambda fn: _hook(fn, name, required_resource_keys, HookKind.SUCCESS)


@typing.overload
def failure_hook(name: Callable[..., Any]) -> HookDefinition: ...


@typing.overload
def failure_hook(
    name: str | None = None, required_resource_keys: Iterable[str] | None = None
) -> Callable[[Callable[..., Any]], HookDefinition]: ...


def failure_hook(
    name: Callable[..., Any] | str | None = None, required_resource_keys: Iterable[str] | None = None
) -> HookDefinition | Callable[[Callable[..., Any]], HookDefinition]:
    """A hook that runs after a step failed for good (not when it will be retried): ``@failure_hook``,
    ``@failure_hook("name")`` or ``@failure_hook(required_resource_keys={...})``."""
    if callable(name):
        return _hook(name, None, required_resource_keys, HookKind.FAILURE)
    hook_name = name
    return lambda fn: _hook(fn, hook_name, required_resource_keys, HookKind.FAILURE)


class HookContext:
    """What a hook receives: the step (`step_key`, `op`), its run and job, the step's resources, its config,
    the op's error (`op_exception`, failure hooks) or its outputs' values (`op_output_values`, success hooks)."""

    def __init__(
        self,
        *,
        hook_def: HookDefinition | None = None,
        op: Any = None,
        step_key: str | None = None,
        run_id: str | None = None,
        job_name: str | None = None,
        resources: Any = None,
        op_config: Any = None,
        op_exception: BaseException | None = None,
        op_output_values: Mapping[str, Any] | None = None,
        instance: Any = None,
        log: logging.Logger | None = None,
    ) -> None:
        from cairn.resources import _as_namespace

        self.hook_def = hook_def
        self.op = op
        self.step_key = step_key
        self.run_id = run_id
        self.job_name = job_name
        self.resources = _as_namespace(resources)
        self.op_config = op_config
        self.op_exception = op_exception
        self.op_output_values: Mapping[str, Any] = dict(op_output_values or {})
        self.op_output_metadata: Mapping[str, Any] = {}
        self.instance = instance
        self.log = log or logging.getLogger(f"cairn.hooks.{hook_def.name if hook_def else 'hook'}")

    @property
    def required_resource_keys(self) -> frozenset[str]:
        return self.hook_def.required_resource_keys if self.hook_def is not None else frozenset()

    def __repr__(self) -> str:
        return f"<HookContext {self.hook_def.name if self.hook_def else ''} step={self.step_key}>"


def build_hook_context(
    resources: Mapping[str, Any] | None = None,
    op: Any = None,
    run_id: str | None = None,
    job_name: str | None = None,
    op_exception: Exception | None = None,
    instance: Any = None,
) -> HookContext:
    """A `HookContext` for calling a hook directly in a test; `resources` may be values or resource definitions
    (initialised here)."""
    from cairn.resources import initialised_for_test

    return HookContext(
        op=op,
        run_id=run_id,
        job_name=job_name,
        resources=initialised_for_test(resources, instance),
        op_exception=op_exception,
        instance=instance,
    )


def will_retry(policy: Any, exc: BaseException, retry_number: int | None) -> bool:
    """Whether a step whose attempt `retry_number` (0 for the first) raised `exc` will be tried again, as the run
    machine decides it (`cairn.retries.rule_for`: a `RetryRequested` by its own ``max_retries``, another error by
    the step's retry policy, a `Failure(allow_retries=False)`, a Dagster error or an interrupt never). An unknown
    attempt (None) counts as the last: its failure hooks run."""
    if retry_number is None:
        return False
    rule = rule_for(exc, policy)
    return rule is not None and retry_number < rule.max_retries


@dataclass(frozen=True)
class HookResult:
    """One hook's outcome for a step, and its error when it raised."""

    hook: str
    outcome: HookOutcome
    error: BaseException | None = None


def step_hooks(job: Any, node: Any) -> list[HookDefinition]:
    """The hooks of one node: the job's and the node's own (``op.with_hooks``), each once, by name."""
    if not getattr(job, "hook_defs", None) and not getattr(node, "hook_defs", None):
        return []
    hooks = {h.name: h for h in (getattr(job, "hook_defs", None) or ())}
    hooks.update({h.name: h for h in (getattr(node, "hook_defs", None) or ())})
    return [hooks[name] for name in sorted(hooks)]


def run_hooks(
    hooks: Sequence[HookDefinition],
    succeeded: bool,
    retrying: bool,
    context_for: Callable[[HookDefinition], HookContext],
) -> list[HookResult]:
    """Run the hooks that fire for a step's final outcome (`succeeded`); none when the failed attempt is
    `retrying`. A hook that raises is ERRORED (logged), the others still run."""
    results = []
    for hook in hooks:
        if retrying or not hook.fires(succeeded):
            results.append(HookResult(hook.name, HookOutcome.SKIPPED))
            continue
        context = context_for(hook)
        try:
            hook.hook_fn(context, [])
        except Exception as exc:
            context.log.exception("hook %s of step %s raised", hook.name, context.step_key)
            results.append(HookResult(hook.name, HookOutcome.ERRORED, exc))
            continue
        results.append(HookResult(hook.name, HookOutcome.COMPLETED))
    return results
