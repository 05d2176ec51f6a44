"""Dynamic fan-out: step keys of mapped steps, and the expansion of a job's graph once keys are known.

A *dynamic* output (Dagster's `DynamicOut`) emits one value per *mapping key*, decided at run time. An
op *mapped* over it (`.map(fn)`) runs once per key, as the step ``op[key]``; an op that *collects* a
mapped op's output (`.collect()`) reads the list of all its instances' values, in the order the keys
were emitted. A mapped op's instances are independent steps: each is planned, run, retried, reused and
re-executed on its own.

Until the dynamic step has run, its keys are unknown and each mapped op is one *placeholder* step
``op[*]``; `expand` replaces placeholders by instances as soon as the keys are known (in the run that
produced them, or from the parent run when the dynamic step is reused). The per-key value of dynamic
output ``items`` of step ``split`` is the output ``items[key]`` of ``split``, stored and indexed like any
other output; its key list is recorded beside the run's output index (`keys`).

One level of fan-out: a mapped op cannot itself have a dynamic output, and cannot read two dimensions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.errors import DefinitionError, OutputContractError

#: Dagster's rule for mapping keys; also what keeps `op[key]` a step key in every place it appears.
KEY_PATTERN = r"[A-Za-z0-9_]{1,100}"
_KEY = re.compile(rf"^{KEY_PATTERN}$")
_STEP = re.compile(r"^(?P<node>[^\[\]]+)\[(?P<key>[^\[\]]*)\]$")
ANY = "*"  # the key of a placeholder step


class MappingKeyError(DefinitionError):
    """A mapping key is malformed or repeated; the message says which and what is allowed."""


class DuplicateMappingKeyError(MappingKeyError, OutputContractError):
    """An op emitted the same mapping key twice (Dagster's invariant violation)."""


def check_key(op: str, output: str, key: object, seen: set[str] | None = None) -> str:
    """`key` as a valid mapping key of `op`'s dynamic output `output`, or MappingKeyError."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise MappingKeyError(
            f"op {op}: DynamicOutput mapping_key {key!r} of output {output!r} is not valid: use 1 to 100 letters, "
            f"digits or underscores (e.g. mapping_key='shard_7'; replace other characters, e.g. key.replace('-', '_'))"
        )
    if seen is not None:
        if key in seen:
            raise DuplicateMappingKeyError(
                f'Compute for op "{op}" yielded a DynamicOutput with mapping_key "{key}" multiple times. (Cairn: '
                f"output {output!r}: each key names one mapped step, so keys must be unique.)"
            )
        seen.add(key)
    return key


def step_key(node: str, key: str) -> str:
    return f"{node}[{key}]"


def split_step(step: str) -> tuple[str, str | None]:
    """``op[key]`` -> (op, key); ``op[*]`` -> (op, "*"); a plain step -> (step, None)."""
    m = _STEP.match(step)
    return (m.group("node"), m.group("key")) if m else (step, None)


def node_of(step: str) -> str:
    return split_step(step)[0]


def is_placeholder(step: str) -> bool:
    return split_step(step)[1] == ANY


def dynamic_output(output: str) -> tuple[str, str | None]:
    """``items[key]`` (a per-key value of dynamic output items) -> (items, key); else (output, None)."""
    return split_step(output)


Keys = Mapping[tuple[str, str], Sequence[str]]  # (dynamic step, dynamic output) -> keys, in emission order


def value_key(index_key: str, key: str) -> str:
    """The storage key of one mapping key's value of a dynamic output: its key index's storage key with
    ``[key]`` appended (what `output_key(run, step, "items[key]")` gives for the index ``items``)."""
    return f"{index_key}[{key}]"


def status_keys(steps_status: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, ...]]:
    """The mapping keys a Run's status knows: `status.steps[<dynamic step>].keys` ({output: [keys]})."""
    return {
        (step, out): tuple(ks)
        for step, st in steps_status.items()
        for out, ks in ((st or {}).get("keys") or {}).items()
    }


def expand(
    steps: Sequence[str],
    deps: Mapping[str, Mapping[str, tuple[str, str]]],
    outputs: Mapping[str, Mapping[str, bool]],
    dynamic: Mapping[str, Sequence[str]],
    mapped: Mapping[str, tuple[str, str]],
    collects: Mapping[str, Mapping[str, tuple[str, str]]],
    keys: Keys,
) -> tuple[tuple[str, ...], dict[str, dict[str, tuple[str, str]]], dict[str, dict[str, bool]]]:
    """The concrete (steps, deps, outputs) of a job's static graph, with each mapped op expanded over the
    keys known in `keys` (a placeholder ``op[*]`` where they are not). Collect inputs become one input per
    key, ``input[key]`` (or ``input[*]`` on a placeholder). Steps keep a topological order."""
    c_steps: list[str] = []
    c_deps: dict[str, dict[str, tuple[str, str]]] = {}
    c_outputs: dict[str, dict[str, bool]] = {}

    def keys_of(dim: tuple[str, str]) -> list[str] | None:
        known = keys.get(dim)
        return None if known is None else list(known)

    for node in steps:
        dim = mapped.get(node)
        node_deps = deps.get(node) or {}
        node_outs = dict(outputs.get(node) or {})
        node_collects = collects.get(node) or {}
        if dim is None:
            instances: list[tuple[str, str | None]] = [(node, None)]
        else:
            ks = keys_of(dim)
            instances = [(step_key(node, ANY), ANY)] if ks is None else [(step_key(node, k), k) for k in ks]
        for step, key in instances:
            d: dict[str, tuple[str, str]] = {}
            for inp, (up, out) in node_deps.items():
                if dim is not None and up == dim[0] and out == dim[1]:
                    d[inp] = (up, f"{out}[{key}]")
                elif dim is not None and mapped.get(up) == dim:
                    d[inp] = (step_key(up, key or ANY), out)
                else:
                    d[inp] = (up, out)
            for inp, (up, out) in node_collects.items():
                ks = keys_of(mapped[up])
                for k in [ANY] if ks is None else ks:
                    d[f"{inp}[{k}]"] = (step_key(up, k), out)
            o: dict[str, bool] = {}
            for out, required in node_outs.items():
                if out in (dynamic.get(node) or ()):
                    o[out] = True  # the key index: where the step's keys are recorded (also for zero keys)
                    for k in keys_of((node, out)) or ():
                        o[f"{out}[{k}]"] = True
                else:
                    o[out] = required
            c_steps.append(step)
            c_deps[step] = d
            c_outputs[step] = o
    return tuple(c_steps), c_deps, c_outputs


def infer_mapped(
    steps: Sequence[str], deps: Mapping[str, Mapping[str, tuple[str, str]]], dynamic: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, str]]:
    """Which ops are mapped, when a graph does not say (a Job resource): an op whose input reads a dynamic
    output, or reads an op mapped over one, is mapped over that dynamic output (in any op order)."""
    mapped: dict[str, tuple[str, str]] = {}
    changed = True
    while changed:
        changed = False
        for op in steps:
            if op in mapped:
                continue
            for up, out in (deps.get(op) or {}).values():
                dim = (up, out) if out in (dynamic.get(up) or ()) else mapped.get(up)
                if dim is not None:
                    mapped[op] = dim
                    changed = True
                    break
    return mapped


def check_graph(
    steps: Sequence[str],
    deps: Mapping[str, Mapping[str, tuple[str, str]]],
    dynamic: Mapping[str, Sequence[str]],
    mapped: Mapping[str, tuple[str, str]],
    collects: Mapping[str, Mapping[str, tuple[str, str]]],
    where: str,
) -> None:
    """Refuse a static graph whose fan-out cannot run: a mapped op with a dynamic output (one level only),
    an op reading a mapped op's output without collecting it, an op mapped over two dimensions, a
    collect of an op that is not mapped. `where` names the job in messages."""
    for node in steps:
        dim = mapped.get(node)
        if dim is not None and dynamic.get(node):
            raise DefinitionError(
                f"{where}: op {node} is mapped over {dim[0]}.{dim[1]} and also has a dynamic output; "
                f"fan-out is one level deep: collect first, then fan out again"
            )
        for inp, (up, out) in (deps.get(node) or {}).items():
            up_dim = mapped.get(up)
            if out in (dynamic.get(up) or ()) and dim != (up, out):
                raise DefinitionError(
                    f"{where}: input {inp!r} of op {node} reads the dynamic output {up}.{out} directly; "
                    f"map over it instead: {up}().map({node})"
                )
            if up_dim is not None and up_dim != dim:
                raise DefinitionError(
                    f"{where}: input {inp!r} of op {node} reads mapped op {up} (one step per key of "
                    f"{up_dim[0]}.{up_dim[1]}) without collecting it; use .collect() (a list of all keys' values)"
                    + (f", or map {node} over {up_dim[0]}.{up_dim[1]} too" if dim is None else "")
                )
        for inp, (up, _out) in (collects.get(node) or {}).items():
            if up not in mapped:
                raise DefinitionError(f"{where}: input {inp!r} of op {node} collects op {up}, which is not mapped")
