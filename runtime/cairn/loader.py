"""Load a job from a reference: ``package.module:attr`` or ``path/to/file.py:attr``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from cairn.definitions import JobDefinition
from cairn.errors import CairnError


def load_job(ref: str) -> JobDefinition:
    """Import the job named by `ref`; the error says which part of the reference is wrong."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise CairnError(f"job reference {ref!r} must look like package.module:job_name or path/to/file.py:job_name")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise CairnError(f"job reference {ref!r}: no file {path}")
        name = f"_cairn_job_{path.stem}_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CairnError(f"job reference {ref!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent.resolve()))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent.resolve()))
    else:
        if os.getcwd() not in sys.path:  # as `python -m` does: modules of the working directory import
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CairnError(f"job reference {ref!r}: cannot import module {target!r}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        jobs = [k for k, v in vars(module).items() if isinstance(v, JobDefinition)]
        raise CairnError(
            f"job reference {ref!r}: {target} has no attribute {attr!r}; "
            f"jobs defined there: {', '.join(jobs) or 'none'}"
        ) from exc
    if not isinstance(obj, JobDefinition) and inspect.isfunction(obj):
        obj = _called(ref, obj)  # Dagster's reconstructable(define_job): a module-level function returning the job
    if not isinstance(obj, JobDefinition):
        raise CairnError(f"job reference {ref!r} names a {type(obj).__name__}, not a job (decorate it with @job)")
    # Record an absolute file path, so `cairn reexecute` finds the job from any directory.
    obj.module_ref = f"{Path(target).resolve()}:{attr}" if target.endswith(".py") or "/" in target else ref
    return obj


def _called(ref: str, fn: object) -> object:
    """What a job-defining function (``def define_job(): return the_job``) returns."""
    try:
        return fn()  # type: ignore[operator]
    except TypeError as exc:
        raise CairnError(
            f"job reference {ref!r} names a function that cannot be called without arguments: {exc}"
        ) from exc
