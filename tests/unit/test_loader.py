"""cairn.loader: a job reference names a job, or (Dagster's reconstructable(define_job)) a function that returns one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cairn.definitions import JobDefinition
from cairn.errors import CairnError
from cairn.loader import load_job

SOURCE = textwrap.dedent(
    """
    from cairn.definitions import job, op

    @op
    def one():
        return 1

    @job
    def the_job():
        one()

    def define_job():
        return the_job

    def needs_an_argument(x):
        return the_job

    def not_a_job():
        return 42
    """
)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "jobs_for_loader.py"
    path.write_text(SOURCE)
    return path


@pytest.mark.parametrize("attr", ["the_job", "define_job"])
def test_a_job_or_a_function_returning_it(module: Path, attr: str) -> None:
    loaded = load_job(f"{module}:{attr}")
    assert isinstance(loaded, JobDefinition) and loaded.name == "the_job"
    assert loaded.module_ref == f"{module.resolve()}:{attr}"


@pytest.mark.parametrize(
    ("attr", "says"),
    [
        ("needs_an_argument", "names a function that cannot be called without arguments"),
        ("not_a_job", "names a int, not a job"),
        ("nowhere", "has no attribute 'nowhere'; jobs defined there: the_job"),
    ],
)
def test_what_is_not_a_job_is_refused(module: Path, attr: str, says: str) -> None:
    with pytest.raises(CairnError, match=says):
        load_job(f"{module}:{attr}")
