"""The Job graph's order: level by level (an op after all its upstreams), ties in the Job's op order."""

from __future__ import annotations

import pytest

from cairn_operator.graph import InvalidJob, build
from cairn_operator.models import JobSpec


def spec(*ops: tuple[str, dict[str, str]]) -> JobSpec:
    return JobSpec.model_validate(
        {
            "image": "i",
            "python": {"job": "m:j"},
            "storage": {"secretRef": {"name": "s"}},
            "ops": [{"name": n, "inputs": ins} for n, ins in ops],
        }
    )


@pytest.mark.parametrize(
    ("ops", "order"),
    [
        ((("c", {"x": "a"}), ("a", {}), ("b", {"x": "a"}), ("d", {"x": "b", "y": "c"})), ("a", "c", "b", "d")),
        ((("z", {}), ("y", {"x": "z"}), ("w", {})), ("z", "w", "y")),  # level 0 first, in Job order
        ((("b", {"x": "a"}), ("c", {"x": "b"}), ("a", {}), ("e", {})), ("a", "e", "b", "c")),
    ],
)
def test_order(ops: tuple[tuple[str, dict[str, str]], ...], order: tuple[str, ...]) -> None:
    assert build(spec(*ops)).order == order


def test_a_long_chain_is_ordered_in_one_pass() -> None:
    chain: list[tuple[str, dict[str, str]]] = [("s0000", {})] + [
        (f"s{i:04d}", {"x": f"s{i - 1:04d}"}) for i in range(1, 1000)
    ]
    assert build(spec(*reversed(chain))).order == tuple(n for n, _ in chain)


def test_a_cycle_names_the_ops_in_it_and_after_it() -> None:
    with pytest.raises(InvalidJob, match=r"^the ops a, b, c form a dependency cycle"):
        build(spec(("a", {"x": "b"}), ("b", {"x": "a"}), ("c", {"x": "b"}), ("d", {})))
