"""`cairn run`, `cairn reexecute` and `cairn runs list|show|tree`: the local mode from a shell."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from cairn.contract import ANNOTATION_MODE
from cairn.errors import CairnError
from cairn.execution import Event, ExecuteJobResult, ReexecutionOptions, execute_job
from cairn.instance import Instance, RunRecord
from cairn.loader import load_job
from cairn.planner import Mode
from cairn.s3io import DEFAULT_PREFIX
from cairn.status import RunStatus


def _instance(args: argparse.Namespace) -> Instance:
    return Instance.local(args.home)


def cairn_command(found: str | None, executable: str, cwd: Path) -> str:
    """How a hint names this installation's `cairn` so that the shell that ran it finds it: `cairn` when
    PATH finds this one (`found`: what `shutil.which("cairn")` says), else the script beside the Python
    running now (`.venv/bin/cairn` from the directory holding the venv, else its full path), else
    `python -m cairn.cli`."""
    script = Path(executable).parent / "cairn"
    if found is not None and Path(found).resolve() == script.resolve():
        return "cairn"
    if not script.exists():
        return "cairn" if found is not None else f"{executable} -m cairn.cli"
    return str(script.relative_to(cwd)) if script.parent.parent.parent == cwd else str(script)


def this_cairn() -> str:
    """`cairn_command` for this process: what to type, in the shell that started it, to run cairn again."""
    import shutil

    return cairn_command(shutil.which("cairn"), sys.executable, Path.cwd())


def load_run_config(path: Path | None) -> dict[str, Any] | None:
    """A run config file (YAML or JSON), a mapping such as {ops: {op: {config: ...}}}; None without one."""
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CairnError(f"cannot read run config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CairnError(f"run config {path} must be a mapping like {{ops: {{op_name: {{config: ...}}}}}}")
    return data


#: The core API's rule for env var names (no `=`, not starting with a digit); the same locally.
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
#: A step name as `--env` and `--image` take it: no `:`, `=` or whitespace.
STEP_NAME = re.compile(r"^[^\s:=]+$")
ENV_FORM = "--env takes STEP:NAME=VALUE, e.g. --env unreliable:CAIRN_UNRELIABLE=pass"


def parse_step_env(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """`--env STEP:NAME=VALUE` values as {step: {NAME: VALUE}}, in the order given. VALUE may be empty and
    may hold `:` and `=`; a later value of the same step and NAME wins."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        step, colon, assignment = item.partition(":")
        name, eq, value = assignment.partition("=")
        if not colon or not eq or not STEP_NAME.match(step) or not name:
            raise CairnError(f"{ENV_FORM} (got {item!r})")
        if not ENV_NAME.match(name):
            raise CairnError(
                f"--env {item!r}: {name!r} is not an environment variable name (letters, digits, '_', '-', '.'; "
                "not starting with a digit); " + ENV_FORM
            )
        out.setdefault(step, {})[name] = value
    return out


def same_steps(parent: RunRecord) -> list[str]:
    """Dagster's "Same steps": the steps whose op ran in `parent` (succeeded, failed or interrupted), in
    job order; reused, skipped and not-executed steps are not among them."""
    ran = [step for step, rec in parent.steps.items() if rec.state.ran]
    if not ran:
        raise CairnError(f"run {parent.run_id} executed no step: --same-steps has nothing to re-execute")
    return ran


def _tags(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise CairnError(f"--tag {p!r} must look like key=value")
        out[k] = v
    return out


class Progress:
    """Live progress lines as steps start and end."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        kind, step, d = event
        line = {
            "run_start": lambda: (
                f"run {d['run_id']}"
                + (f" (re-execution of {d['parent']})" if d["parent"] else "")
                + f": {len(d['steps'])} step(s) to execute"
            ),
            "step_start": lambda: f"  ...   {step}",
            "step_success": lambda: f"  ok    {step}  ({d['duration'] * 1000:.0f} ms)",
            "step_failure": lambda: f"  FAIL  {step}  {d['error']}",
            "step_retry": lambda: (
                f"  retry {step}  attempt {d['attempt']} failed ({d['error']}); next attempt in {d['delay']:.3g} s"
            ),
            "step_skipped": lambda: f"  skip  {step}  ({d['reason']})",
            "step_not_executed": lambda: f"  --    {step}  ({d['reason']})",
            "step_interrupted": lambda: f"  INT   {step}  interrupted",
            "step_keys": lambda: f"  keys  {step}.{d['output']}: {_keys(d['keys'])}",
            "keys_changed": lambda: (
                f"  keys  {step}.{d['output']} changed since the parent run: added {_keys(d['added'])}; "
                f"removed {_keys(d['removed'])} (its maps run over the new keys only)"
            ),
            "run_end": lambda: f"run {d['run_id']}: {d['status']}",
        }.get(kind)
        if line is not None:
            print(line(), file=self.out, flush=True)


def _keys(keys: Sequence[str], limit: int = 10) -> str:
    """Mapping keys for a progress line: the first `limit`, then how many more."""
    if not keys:
        return "none"
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more + f" ({len(keys)})"


def _finish(result: ExecuteJobResult) -> int:
    if result.status is RunStatus.SUCCESS:
        return 0
    if result.status is RunStatus.CANCELED:
        print(f"re-run what is left with: {this_cairn()} reexecute {result.run_id} --from-failure", file=sys.stderr)
        return 130
    print(f"re-execute from failure with: {this_cairn()} reexecute {result.run_id} --from-failure", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    result = execute_job(
        job,
        instance=_instance(args),
        run_config=load_run_config(args.config),
        tags=_tags(args.tag),
        on_event=Progress(),
    )
    return _finish(result)


IMAGE_LOCAL = (
    "--image has no meaning in-process: `cairn reexecute` runs every step in this process, not in a container "
    "image; change an image with `cairn k8s reexecute RUN --image STEP=IMAGE`"
)


def cmd_reexecute(args: argparse.Namespace) -> int:
    if args.image:
        raise CairnError(IMAGE_LOCAL)
    env = parse_step_env(args.env)
    run_config = load_run_config(args.config)
    instance = _instance(args)
    parent = instance.get_run(args.run_id)
    ref = args.job or parent.job_ref
    if not ref:
        raise CairnError(f"run {args.run_id} does not record where its job is defined; pass --job module:attr")
    job = load_job(ref)
    rerun = args.rerun_missing
    if args.from_failure:
        options = ReexecutionOptions.from_failure(args.run_id, instance, rerun_missing=rerun)
        options.step_env = env
    elif args.same_steps:
        options = ReexecutionOptions(args.run_id, same_steps(parent), Mode.SELECTED, rerun, step_env=env)
    elif args.stale:
        options = ReexecutionOptions(args.run_id, (), Mode.STALE, rerun, step_env=env)
    elif args.select:
        options = ReexecutionOptions(args.run_id, args.select, Mode.SELECTED, rerun, step_env=env)
    elif args.from_selected:
        options = ReexecutionOptions(args.run_id, args.from_selected, Mode.FROM_SELECTED, rerun, step_env=env)
    else:
        options = ReexecutionOptions(args.run_id, (), Mode.ALL, rerun, step_env=env)
    result = execute_job(
        job,
        instance=instance,
        run_config=run_config,
        reexecution_options=options,
        tags=_tags(args.tag),
        on_event=Progress(),
    )
    return _finish(result)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    runs = _instance(args).list_runs(args.limit)
    if args.quiet:
        print("".join(f"{r.run_id}\n" for r in runs), end="")
        return 0
    if not runs:
        print(f"no runs in {_instance(args).db_path}")
        return 0
    print(f"{'RUN ID':<36}  {'JOB':<20}  {'STATUS':<8}  {'PARENT':<36}  CREATED")
    for r in runs:
        print(
            f"{r.run_id:<36}  {r.job_name:<20}  {r.status.value:<8}  {r.parent_run_id or '-':<36}  {_when(r.created)}"
        )
    return 0


def describe_run(r: RunRecord) -> dict[str, Any]:
    described = {
        "run_id": r.run_id,
        "job": r.job_name,
        "status": r.status.value,
        "parent_run_id": r.parent_run_id,
        "root_run_id": r.root_run_id,
        "tags": r.tags,
        "run_config": r.run_config,
        "created": _when(r.created),
        "steps": {
            s: {
                k: v
                for k, v in {
                    "status": rec.status.value,
                    "reason": rec.reason,
                    "interrupted": rec.interrupted or None,
                    "source_run": rec.source_run_id,
                    "duration_ms": round((rec.finished - rec.started) * 1000, 1)
                    if rec.started and rec.finished
                    else None,
                    "error": rec.error.splitlines()[-1] if rec.error else None,
                    "outputs": {o: {"key": so.key, "size": so.size} for o, so in rec.outputs.items()} or None,
                }.items()
                if v is not None
            }
            for s, rec in r.steps.items()
        },
    }
    if r.keys:  # fan-out: each dynamic output's mapping keys, in emission order
        described["mapping_keys"] = {f"{s}.{o}": list(ks) for (s, o), ks in r.keys.items()}
    return described


def cmd_show(args: argparse.Namespace) -> int:
    r = _instance(args).get_run(args.run_id)
    if args.output == "json":
        print(json.dumps(describe_run(r), indent=2))
    else:
        print(yaml.safe_dump(describe_run(r), sort_keys=False), end="")
    return 0


def render_tree(runs: list[RunRecord], highlight: str | None = None) -> str:
    children: dict[str | None, list[RunRecord]] = {}
    for r in runs:
        children.setdefault(r.parent_run_id, []).append(r)
    lines: list[str] = []

    def summary(r: RunRecord) -> str:
        counts: dict[str, int] = {}
        for rec in r.steps.values():
            counts[rec.status.value] = counts.get(rec.status.value, 0) + 1
        parts = ", ".join(f"{v} {k.lower()}" for k, v in counts.items())
        mode = r.tags.get(ANNOTATION_MODE)
        mark = "  <-" if r.run_id == highlight else ""
        return f"{r.run_id}  {r.status.value}  [{parts}]" + (f"  mode={mode}" if mode else "") + mark

    def walk(r: RunRecord, prefix: str, last: bool, root: bool) -> None:
        lines.append((prefix + ("`-- " if last else "|-- ") if not root else "") + summary(r))
        kids = children.get(r.run_id, [])
        for i, k in enumerate(kids):
            walk(k, prefix + ("" if root else ("    " if last else "|   ")), i == len(kids) - 1, False)

    ids = {r.run_id for r in runs}
    for r in runs:
        if r.parent_run_id is None or r.parent_run_id not in ids:
            walk(r, "", True, True)
    return "\n".join(lines)


def cmd_tree(args: argparse.Namespace) -> int:
    runs = _instance(args).get_run_group(args.run_id)
    print(f"job {runs[0].job_name}, lineage of root run {runs[0].root_run_id}:")
    print(render_tree(runs, highlight=args.run_id))
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from cairn.manifest import job_manifest, to_yaml

    job = load_job(args.job)
    doc = job_manifest(job, args.job, image=args.image, secret=args.secret, name=args.name, prefix=args.prefix)
    print(to_yaml(doc), end="")
    return 0


def add_commands(sub: Any, home_help: str) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", type=Path, default=None, help=home_help)

    r = sub.add_parser("run", help="run a job in this process (module:job or file.py:job)")
    r.add_argument("job", help="the job: package.module:job_name or path/to/file.py:job_name")
    r.add_argument("--config", type=Path, help="run config file (YAML or JSON): {ops: {op: {config: ...}}}")
    r.add_argument("--tag", action="append", default=[], help="key=value tag (repeatable)")
    common(r)
    r.set_defaults(func=cmd_run)

    x = sub.add_parser("reexecute", help="re-execute part of an earlier run, linked to it")
    x.add_argument("run_id")
    how = x.add_mutually_exclusive_group()
    how.add_argument("--from-failure", action="store_true", help="failed, interrupted, not-started steps + downstream")
    how.add_argument("--select", nargs="+", metavar="CLAUSE", help="step selection clauses, e.g. 'unreliable*'")
    how.add_argument("--from-selected", nargs="+", metavar="STEP", help="these steps and everything downstream")
    how.add_argument(
        "--same-steps", action="store_true", help="the steps the parent run executed (Dagster's Same steps)"
    )
    how.add_argument(
        "--stale",
        action="store_true",
        help="the steps whose code version or config changed since they produced the parent's outputs, "
        "what they feed, and what the parent never produced; the rest is reused",
    )
    how.add_argument("--all", action="store_true", help="every step (the default)")
    x.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="STEP:NAME=VALUE",
        help="set NAME=VALUE in the environment while STEP's op runs (repeatable)",
    )
    x.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="STEP=IMAGE",
        help="refused here (steps run in this process): see cairn k8s reexecute",
    )
    x.add_argument("--rerun-missing", action="store_true", help="re-run producers of outputs gone from storage")
    x.add_argument("--job", help="the job reference, when the parent run does not record it")
    x.add_argument("--config", type=Path, metavar="FILE", help="run config file (default: the parent run's)")
    x.add_argument("--tag", action="append", default=[], help="key=value tag (repeatable)")
    common(x)
    x.set_defaults(func=cmd_reexecute)

    m = sub.add_parser("manifest", help="print the Kubernetes Job manifest of a Python job")
    m.add_argument("job", help="package.module:job_name (importable in the image)")
    m.add_argument("--image", required=True, help="image with cairn and the job's code installed")
    m.add_argument("--secret", default="cairn-s3", help="Secret with the S3 settings (default: %(default)s)")
    m.add_argument("--prefix", default=DEFAULT_PREFIX, help="storage key prefix (default: %(default)s)")
    m.add_argument("--name", help="the Job's name (default: the job's name as a DNS label)")
    m.set_defaults(func=cmd_manifest)

    runs = sub.add_parser("runs", help="inspect runs of the local instance")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("list", help="recent runs, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only the run IDs, newest first: RUN_ID=$(cairn runs list -q --limit 1)",
    )
    common(ls)
    ls.set_defaults(func=cmd_list)
    show = rsub.add_parser("show", help="one run with its steps")
    show.add_argument("run_id")
    show.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    common(show)
    show.set_defaults(func=cmd_show)
    tree = rsub.add_parser("tree", help="the lineage tree of a run (its root and every re-execution)")
    tree.add_argument("run_id")
    common(tree)
    tree.set_defaults(func=cmd_tree)
