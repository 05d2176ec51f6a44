"""The step entrypoint that runs inside a pod: ``python -m cairn.step run --job module:attr --run-id R
--step S --context JSON``.

The step context (JSON, or ``@path``, or the env var ``CAIRN_STEP_CONTEXT``) says where each input is
(chosen by the planner: ``"upstream.output": {"key": ..., "run_id": ...}``), where outputs go
(``storage``: ``{"kind": "s3", "bucket", "prefix", "endpoint"}`` or ``{"kind": "fs", "root"}``), the
namespace that keys are made in, and the op's config. Credentials come only from the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never from the context.

It loads the inputs, runs the op, stores its outputs, and writes a small JSON result to the
termination message path ($CAIRN_TERMINATION_MESSAGE_PATH, else /dev/termination-log):
``{"protocol": 1, "status": "SUCCESS" | "FAILURE", "outputs": {name: {key, size, sha256}}, "duration_s",
"error": {type, message}}``. Exit status: 0 success, 1 the op failed, 2 the invocation is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cairn.errors import CairnError
from cairn.execution import outs_format, run_step_body
from cairn.io import FileSource, FilesystemIOManager, IOManager, StoredOutput, output_key
from cairn.loader import load_job

#: Version of the context and result JSON; bump on incompatible changes.
PROTOCOL = 1
MAX_MESSAGE = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class InvocationError(CairnError):
    """The entrypoint was called wrongly (bad context, unknown step): exit status 2."""


def io_manager_for(storage: Mapping[str, Any]) -> IOManager:
    kind = storage.get("kind")
    if kind == "fs":
        return FilesystemIOManager(Path(storage["root"]))
    if kind == "s3":
        from cairn.s3io import S3IOManager

        bucket = storage.get("bucket") or os.environ.get("CAIRN_S3_BUCKET")
        if not bucket:
            raise InvocationError("no bucket: set storage.bucket in the step context, or CAIRN_S3_BUCKET")
        return S3IOManager(
            bucket=bucket,
            prefix=storage.get("prefix", ""),
            endpoint_url=storage.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL"),
        )
    raise InvocationError(f"step context storage.kind must be 'fs' or 's3', got {kind!r}")


def read_context(raw: str | None) -> dict[str, Any]:
    raw = raw if raw is not None else os.environ.get("CAIRN_STEP_CONTEXT")
    if raw is None:
        raise InvocationError("no step context: pass --context JSON (or @file), or set CAIRN_STEP_CONTEXT")
    if raw.startswith("@"):
        try:
            raw = Path(raw[1:]).read_text()
        except OSError as exc:
            raise InvocationError(f"cannot read step context file {raw[1:]}: {exc}") from exc
    try:
        ctx = json.loads(raw)
    except ValueError as exc:
        raise InvocationError(f"step context is not valid JSON: {exc}") from exc
    if not isinstance(ctx, dict):
        raise InvocationError("step context must be a JSON object")
    if ctx.get("protocol", PROTOCOL) != PROTOCOL:
        raise InvocationError(
            f"step context protocol {ctx.get('protocol')} is not {PROTOCOL}: image and operator versions differ"
        )
    return ctx


def resolve_step(nodes: Mapping[str, Any], step: str, job_name: str) -> str:
    """The node a step name means: itself, or the node whose DNS form it is (`op-2` for `op_2`)."""
    from cairn.manifest import dns_name

    if step in nodes:
        return step
    matches = [n for n in nodes if dns_name(n) == step]
    if len(matches) == 1:
        return matches[0]
    raise InvocationError(f"job {job_name} has no step {step!r}; its steps are {', '.join(nodes)}")


def result_message(result: dict[str, Any]) -> str:
    """The result as compact JSON that fits the 4 KiB termination message (the error is cut first)."""
    text = json.dumps(result, separators=(",", ":"))
    if len(text) > MAX_MESSAGE and result.get("error"):
        err = dict(result["error"])
        err["message"] = err.get("message", "")[:500]
        err.pop("traceback", None)
        result = {**result, "error": err}
        text = json.dumps(result, separators=(",", ":"))
    if len(text) > MAX_MESSAGE:
        result = {**result, "outputs": {k: {"key": v["key"]} for k, v in result.get("outputs", {}).items()}}
        text = json.dumps(result, separators=(",", ":"))
    return text


def run(job_ref: str, run_id: str, step: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Run one step as the context says; returns the result document (never raises for op failures)."""
    t0 = time.monotonic()
    result: dict[str, Any] = {"protocol": PROTOCOL, "run_id": run_id, "step": step, "outputs": {}}
    job = load_job(job_ref)
    step = resolve_step(job.nodes, step, job.name)
    io = io_manager_for(ctx.get("storage") or {})
    inputs: Mapping[str, Mapping[str, str]] = ctx.get("inputs") or {}
    node = job.nodes[step]
    missing = [f"{h.node}.{h.output}" for h in node.inputs.values() if f"{h.node}.{h.output}" not in inputs]
    if missing:
        raise InvocationError(f"step context has no location for input(s) {', '.join(missing)} of step {step}")
    namespace = str(ctx.get("namespace") or "default")
    op_config = job.op_config({"ops": {step: {"config": ctx.get("config")}}}, step)  # validated, defaults filled
    stored: dict[str, StoredOutput] = {}

    def load(inp: str, up: str, out: str) -> Any:
        loc = inputs[f"{up}.{out}"]
        return io.load(loc["key"], loc.get("format") or outs_format(job, up, out))

    def store(name: str, value: Any, fmt: str) -> None:
        stored[name] = io.store(output_key(run_id, step, name, namespace=namespace), value, fmt)
        result["outputs"][name] = {
            "key": stored[name].key,
            "size": stored[name].size,
            "sha256": stored[name].sha256,
            "etag": stored[name].etag,
            "format": fmt,
        }

    try:
        run_step_body(job, step, run_id, op_config, load, store)
        result["status"] = "SUCCESS"
    except Exception as exc:
        result["status"] = "FAILURE"
        result["error"] = {
            "type": type(exc).__name__,
            "message": str(exc)[:2000],
            "traceback": "".join(traceback.format_exception(exc))[-1500:],
        }
        traceback.print_exc()
    result["duration_s"] = round(time.monotonic() - t0, 4)
    return result


def env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def exec_command(
    run_id: str,
    step: str,
    outputs: list[str],
    optional: list[str],
    command: list[str],
    ctx: Mapping[str, Any],
    workdir: Path,
) -> tuple[dict[str, Any], int]:
    """The command form: inputs downloaded to files, the command run with their paths in env vars
    (CAIRN_INPUT_<NAME>, CAIRN_OUTPUT_<NAME>), the output files it wrote uploaded as raw bytes."""
    t0 = time.monotonic()
    if not command:
        raise InvocationError("no command after `--`: python -m cairn.step exec [options] -- CMD ARGS...")
    io = io_manager_for(ctx.get("storage") or {})
    namespace = str(ctx.get("namespace") or "default")
    result: dict[str, Any] = {"protocol": PROTOCOL, "run_id": run_id, "step": step, "outputs": {}}
    indir, outdir = workdir / "inputs", workdir / "outputs"
    indir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(CAIRN_INPUTS_DIR=str(indir), CAIRN_OUTPUTS_DIR=str(outdir), CAIRN_RUN_ID=run_id, CAIRN_STEP=step)
    for ref, loc in (ctx.get("inputs") or {}).items():
        path = indir / ref
        with path.open("wb") as f:  # streamed: an input of any size in little memory
            io.load_into(loc["key"], f)
        for name in loc.get("names") or [ref.split(".")[0]]:
            env[f"CAIRN_INPUT_{env_name(name)}"] = str(path)
    for out in outputs:
        env[f"CAIRN_OUTPUT_{env_name(out)}"] = str(outdir / out)
    try:
        code = subprocess.call(command, env=env)
    except OSError as exc:
        raise InvocationError(f"cannot run {command[0]!r}: {exc}") from exc
    if code != 0:
        result.update(status="FAILURE", error={"type": "CommandFailed", "message": f"{command[0]} exited {code}"})
    else:
        missing = [o for o in outputs if o not in optional and not (outdir / o).is_file()]
        if missing:
            result.update(
                status="FAILURE",
                error={
                    "type": "MissingOutput",
                    "message": "the command wrote no "
                    + ", ".join(f"{o} (to $CAIRN_OUTPUT_{env_name(o)})" for o in missing),
                },
            )
        else:
            for o in outputs:
                path = outdir / o
                if path.is_file():
                    key = output_key(run_id, step, o, namespace=namespace)
                    stored = io.store(key, FileSource(path), "bytes")  # streamed from the file
                    result["outputs"][o] = {
                        "key": stored.key,
                        "size": stored.size,
                        "sha256": stored.sha256,
                        "etag": stored.etag,
                        "format": "bytes",
                    }
            result["status"] = "SUCCESS"
    result["duration_s"] = round(time.monotonic() - t0, 4)
    return result, (code or (1 if result["status"] == "FAILURE" else 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cairn.step", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one step of a Cairn job")
    r.add_argument("--job", required=True, help="package.module:job or path/to/file.py:job")
    r.add_argument("--run-id", required=True)
    r.add_argument("--step", required=True)
    r.add_argument("--context", help="step context JSON, or @path (default: $CAIRN_STEP_CONTEXT)")
    r.add_argument(
        "--termination-path",
        default=None,
        help=f"where to write the result (default: $CAIRN_TERMINATION_MESSAGE_PATH or {DEFAULT_TERMINATION_PATH})",
    )
    x = sub.add_parser("exec", help="run any command as a step: inputs and outputs as files")
    x.add_argument("--run-id", required=True)
    x.add_argument("--step", required=True)
    x.add_argument("--outputs", default="result", help="comma-separated output names")
    x.add_argument("--optional-outputs", default="", help="comma-separated outputs the command may omit")
    x.add_argument("--context", help="step context JSON, or @path (default: $CAIRN_STEP_CONTEXT)")
    x.add_argument("--termination-path", default=None)
    x.add_argument("--workdir", type=Path, default=None, help="where input and output files go (default: a temp dir)")
    x.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    path = Path(args.termination_path or os.environ.get("CAIRN_TERMINATION_MESSAGE_PATH") or DEFAULT_TERMINATION_PATH)
    if args.command == "exec":
        return _main_exec(args, path)
    try:
        result = run(args.job, args.run_id, args.step, read_context(args.context))
    except CairnError as exc:
        message = {
            "protocol": PROTOCOL,
            "run_id": args.run_id,
            "step": args.step,
            "status": "FAILURE",
            "error": {"type": type(exc).__name__, "message": str(exc)[:2000]},
            "invocation_error": True,
        }
        print(f"cairn.step: error: {exc}", file=sys.stderr)
        _write(path, result_message(message))
        return 2
    _write(path, result_message(result))
    print(json.dumps({k: v for k, v in result.items() if k != "error"}), file=sys.stderr)
    return 0 if result["status"] == "SUCCESS" else 1


def _main_exec(args: argparse.Namespace, path: Path) -> int:
    import tempfile

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    outputs = [o for o in args.outputs.split(",") if o]
    optional = [o for o in args.optional_outputs.split(",") if o]
    try:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cairn-step-"))
        result, code = exec_command(args.run_id, args.step, outputs, optional, cmd, read_context(args.context), workdir)
    except CairnError as exc:
        print(f"cairn.step: error: {exc}", file=sys.stderr)
        message = {
            "protocol": PROTOCOL,
            "run_id": args.run_id,
            "step": args.step,
            "status": "FAILURE",
            "invocation_error": True,
            "error": {"type": type(exc).__name__, "message": str(exc)[:2000]},
        }
        _write(path, result_message(message))
        return 2
    _write(path, result_message(result))
    return code


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        print(f"cairn.step: cannot write the termination message to {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
