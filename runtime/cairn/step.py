"""The step entrypoint that runs inside a pod: ``python -m cairn.step run --job module:attr --run-id R
--step S --context JSON``.

The step context (JSON, or ``@path``, or the env var ``CAIRN_STEP_CONTEXT``) says where each input is
(chosen by the planner: ``"upstream.output": {"key": ..., "run_id": ...}``), where outputs go
(``storage``: ``{"kind": "s3", "bucket", "prefix", "endpoint"}`` or ``{"kind": "fs", "root"}``), the
namespace that keys are made in, and the op's config. Optional: ``resources``, the run config's section of
that name (each job resource's config: ``{key: {"config": ...}}``), and ``attempt`` (1 for the first), which
decides whether a failure's hooks run now or wait for the last attempt (without it every failed attempt runs
them). Hook outcomes are printed to stderr. Credentials come only from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY), never from the context.

It loads the inputs, runs the op, stores its outputs, and writes a small JSON result to the
termination message path ($CAIRN_TERMINATION_MESSAGE_PATH, else /dev/termination-log):
``{"protocol": 1, "status": "SUCCESS" | "FAILURE", "outputs": {name: {key, size, sha256}}, "duration_s",
"error": {type, message}}``. Exit status: 0 success, 1 the op failed, 2 the invocation is wrong.

Fan-out (`cairn.dynamic`). ``--step op[key]`` runs one instance of a mapped op (the node part may be in
its DNS form, ``op-2[key]``). The context's optional ``"deps": {input: [upstream step, output]}`` gives
the step's concrete wiring (``{"n": ["split", "items[k]"]}``, ``{"xs[a]": ["proc[a]", "result"], ...}``
for a collect input ``xs``, in key order); without it the step's inputs are derived from the job (which
a collecting step cannot do). ``inputs`` are keyed ``"{upstream step}.{output}"`` with those concrete
names (``"split.items[k]"``, ``"proc[a].result"``). A dynamic output ``items`` stores each key's value at
``<index key>[<key>]`` (``output_key(run, step, "items[key]")``) and reports only its key index (the JSON
list of keys, in emission order) as output ``items``, with ``"dynamic": {"items": {"count": n}}``, so the
termination message stays small however many keys there are.

The command form (``exec``): each output named by ``--dynamic-output NAME`` (repeatable; it is an output
whether or not ``--outputs`` lists it) gets ``CAIRN_OUTPUT_<NAME>`` = an (empty) directory: every regular
file the command writes there is one key (file name = mapping key: 1 to 100 letters, digits or
underscores), uploaded streamed as ``NAME[<file name>]``, in sorted file-name order, then the key index
as above. A collect input is given in the context as ``"collect": {input: [[key, "proc[k].out"], ...]}``
(in key order; each ref also in ``inputs``): the command gets ``CAIRN_INPUT_<INPUT>`` = a directory with
one file per key, named by its key, and ``CAIRN_INPUT_<INPUT>_KEYS`` = a file listing the keys in order,
one per line (a directory listing's order is not the keys' order).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cairn import dynamic
from cairn.contract import STEP_PROTOCOL, ResultStatus
from cairn.errors import CairnError
from cairn.execution import concrete_deps, outs_format, run_step_body
from cairn.io import FileSource, FilesystemIOManager, IOManager, StoredOutput, output_key
from cairn.loader import load_job
from cairn.resources import check_persistent_io

#: Version of the context and result JSON (cairn.contract.STEP_PROTOCOL, which the operator checks).
PROTOCOL = STEP_PROTOCOL
MAX_MESSAGE = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class InvocationError(CairnError):
    """The entrypoint was called wrongly (bad context, unknown step): exit status 2."""


def io_manager_for(storage: Mapping[str, Any]) -> IOManager:
    kind = storage.get("kind")
    if kind == "fs":
        return FilesystemIOManager(Path(storage["root"]))
    if kind == "s3":  # the pod's environment holds its storage Secret's keys (secretKeyRef)
        from cairn.s3io import NoBucket, open_storage

        try:
            return open_storage(
                os.environ,
                bucket=storage.get("bucket"),
                prefix=storage.get("prefix", ""),
                endpoint=storage.get("endpoint"),
            )
        except NoBucket as exc:
            raise InvocationError(f"{exc} (or storage.bucket in the step context)") from exc
    raise InvocationError(f"step context storage.kind must be 'fs' or 's3', got {kind!r}")


#: The environment variable of a packed (zlib, base64) step context: a collector of a large map has one
#: location per key, more than one environment string may hold (Linux: 128 KiB) when written out.
PACKED_CONTEXT_ENV = "CAIRN_STEP_CONTEXT_Z"
#: Contexts up to this size are passed as they are (readable in `kubectl get pod -o yaml`); larger ones packed.
PLAIN_CONTEXT_MAX = 16 * 1024
#: What a packed context may take in the pod's environment (an environment string's limit, with room).
PACKED_CONTEXT_MAX = 120 * 1024


class ContextTooLarge(ValueError):
    """A step's context does not fit in its pod's environment even packed."""


def context_env(ctx: Mapping[str, Any]) -> dict[str, str]:
    """The environment variable that carries `ctx` to the step: CAIRN_STEP_CONTEXT as JSON, or, when the
    JSON is large (a collector of a large map), CAIRN_STEP_CONTEXT_Z packed. ContextTooLarge past the limit."""
    text = json.dumps(ctx, separators=(",", ":"))
    if len(text) <= PLAIN_CONTEXT_MAX:
        return {"CAIRN_STEP_CONTEXT": text}
    packed = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    if len(packed) > PACKED_CONTEXT_MAX:
        raise ContextTooLarge(
            f"the step's context (its inputs' locations) is {len(text) // 1024} KiB, {len(packed) // 1024} KiB "
            f"packed, more than a pod's environment holds ({PACKED_CONTEXT_MAX // 1024} KiB): collect fewer keys "
            f"per step, e.g. split the map in groups and collect each group first"
        )
    return {PACKED_CONTEXT_ENV: packed}


def read_context(raw: str | None) -> dict[str, Any]:
    raw = raw if raw is not None else os.environ.get("CAIRN_STEP_CONTEXT")
    if raw is None and os.environ.get(PACKED_CONTEXT_ENV):
        try:
            raw = zlib.decompress(base64.b64decode(os.environ[PACKED_CONTEXT_ENV])).decode()
        except (ValueError, zlib.error) as exc:
            raise InvocationError(f"{PACKED_CONTEXT_ENV} is not a packed step context: {exc}") from exc
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
    """The step a name means: itself, or with its node part in DNS form (`op-2` for `op_2`); an
    instance of a mapped op keeps its key (`op-2[shard_1]` -> `op_2[shard_1]`)."""
    from cairn.manifest import dns_name

    node, key = dynamic.split_step(step)
    if node in nodes:
        return step
    matches = [n for n in nodes if dns_name(n) == node]
    if len(matches) == 1:
        return matches[0] if key is None else dynamic.step_key(matches[0], key)
    raise InvocationError(f"job {job_name} has no step {step!r}; its steps are {', '.join(nodes)}")


def _deps_of(ctx: Mapping[str, Any]) -> dict[str, tuple[str, str]] | None:
    """The context's concrete wiring of the step: ``deps`` ({input: [up, out]}), else what ``collect``
    says of collect inputs (None when it has neither: the job's wiring applies)."""
    raw = ctx.get("deps")
    if raw is not None:
        if not isinstance(raw, Mapping) or not all(
            isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in raw.values()
        ):
            raise InvocationError('step context "deps" must map each input to [upstream step, output]')
        return {inp: (v[0], v[1]) for inp, v in raw.items()}
    return None


def _collect_of(ctx: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The context's ``collect``: input -> [(key, "up.out")], validated (keys by `dynamic.check_key`)."""
    raw = ctx.get("collect") or {}
    if not isinstance(raw, Mapping):
        raise InvocationError('step context "collect" must map each collect input to [[key, "step.output"], ...]')
    out: dict[str, list[tuple[str, str]]] = {}
    for inp, pairs in raw.items():
        if not isinstance(pairs, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
        ):
            raise InvocationError(f'step context "collect.{inp}" must be a list of [key, "step.output"] pairs')
        seen: set[str] = set()
        try:
            out[inp] = [(dynamic.check_key(inp, inp, k, seen), ref) for k, ref in pairs]
        except CairnError as exc:
            raise InvocationError(f'step context "collect.{inp}": {exc}') from exc
    return out


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
    result["step"] = step
    io = io_manager_for(ctx.get("storage") or {})
    inputs: Mapping[str, Mapping[str, str]] = ctx.get("inputs") or {}
    node_name = dynamic.node_of(step)
    deps = _deps_of(ctx)
    if deps is None:
        collect = _collect_of(ctx)
        keys: dict[tuple[str, str], tuple[str, ...]] = {}
        for inp, pairs in collect.items():
            collected = (job.collects().get(node_name) or {}).get(inp)
            dim = job.nodes[collected[0]].mapped if collected is not None else None
            if dim is None:
                raise InvocationError(f'step context "collect" names {inp!r}, which is no collect input of {node_name}')
            keys[dim] = tuple(k for k, _ in pairs)
        try:
            deps = concrete_deps(job, step, keys)
        except CairnError as exc:
            raise InvocationError(str(exc)) from exc
    missing = [f"{up}.{out}" for up, out in deps.values() if f"{up}.{out}" not in inputs]
    if missing:
        raise InvocationError(f"step context has no location for input(s) {', '.join(missing)} of step {step}")
    namespace = str(ctx.get("namespace") or "default")
    # validated, defaults filled
    op_config = job.op_config({"ops": {node_name: {"config": ctx.get("config")}}}, node_name)
    dynamic_outs = job.nodes[node_name].op.dynamic_outs

    def load(inp: str, up: str, out: str) -> Any:
        loc = inputs[f"{up}.{out}"]
        return io.load(loc["key"], loc.get("format") or outs_format(job, up, out))

    def store(name: str, value: Any, fmt: str) -> None:
        stored = io.store(output_key(run_id, step, name, namespace=namespace), value, fmt)
        if dynamic.dynamic_output(name)[0] in dynamic_outs and name not in dynamic_outs:
            return  # one key's value, at <index key>[<key>]: reported through the index only
        result["outputs"][name] = _reported(stored, fmt)
        if name in dynamic_outs:
            result.setdefault("dynamic", {})[name] = {"count": len(value)}

    attempt = ctx.get("attempt")  # 1 for the first, when the context says it: hooks then fire on the last only
    try:
        check_persistent_io(job, node_name)  # a pod's outputs must outlive it
        run_step_body(
            job,
            step,
            run_id,
            op_config,
            load,
            store,
            deps,
            resources_config=ctx.get("resources") or {},
            retry_number=int(attempt) - 1 if attempt else None,
            emit=_print_event,
        )
        result["status"] = ResultStatus.SUCCESS
    except Exception as exc:
        result["status"] = ResultStatus.FAILURE
        result["error"] = {
            "type": type(exc).__name__,
            "message": str(exc)[:2000],
            "traceback": "".join(traceback.format_exception(exc))[-1500:],
        }
        traceback.print_exc()
    result["duration_s"] = round(time.monotonic() - t0, 4)
    return result


def _print_event(event: tuple[str, str, Mapping[str, Any]]) -> None:
    """A step body's event (a hook's outcome) in the pod's log."""
    kind, step, details = event
    print(f"cairn: {kind} {step} {json.dumps(dict(details), default=str)}", file=sys.stderr)


def _reported(stored: StoredOutput, fmt: str) -> dict[str, Any]:
    return {"key": stored.key, "size": stored.size, "sha256": stored.sha256, "etag": stored.etag, "format": fmt}


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
    dynamic_outputs: Sequence[str] = (),
) -> tuple[dict[str, Any], int]:
    """The command form: inputs downloaded to files, the command run with their paths in env vars
    (CAIRN_INPUT_<NAME>, CAIRN_OUTPUT_<NAME>), the output files it wrote uploaded as raw bytes. A
    dynamic output is a directory of files, one per key; a collect input a directory of files, one per
    key (see the module docstring)."""
    t0 = time.monotonic()
    if not command:
        raise InvocationError("no command after `--`: python -m cairn.step exec [options] -- CMD ARGS...")
    io = io_manager_for(ctx.get("storage") or {})
    namespace = str(ctx.get("namespace") or "default")
    result: dict[str, Any] = {"protocol": PROTOCOL, "run_id": run_id, "step": step, "outputs": {}}
    outputs = [*outputs, *(o for o in dynamic_outputs if o not in outputs)]
    dyn = set(dynamic_outputs)
    collect = _collect_of(ctx)
    inputs: Mapping[str, Mapping[str, Any]] = ctx.get("inputs") or {}
    collected_refs = {ref for pairs in collect.values() for _, ref in pairs}
    unknown = sorted(collected_refs - set(inputs))
    if unknown:
        raise InvocationError(f'step context "collect" reads {", ".join(unknown)}, which "inputs" does not locate')
    indir, outdir = workdir / "inputs", workdir / "outputs"
    indir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(CAIRN_INPUTS_DIR=str(indir), CAIRN_OUTPUTS_DIR=str(outdir), CAIRN_RUN_ID=run_id, CAIRN_STEP=step)
    for ref, loc in inputs.items():
        path = indir / ref
        with path.open("wb") as f:  # streamed: an input of any size in little memory
            io.load_into(loc["key"], f)
        names = loc.get("names") or ([] if ref in collected_refs else [ref.split(".")[0]])
        for name in names:
            env[f"CAIRN_INPUT_{env_name(name)}"] = str(path)
    for inp, pairs in collect.items():
        folder = indir / "collect" / inp
        folder.mkdir(parents=True, exist_ok=True)
        for key, ref in pairs:
            _link_or_copy(indir / ref, folder / key)
        index = indir / "collect" / f"{inp}.keys"
        index.write_text("".join(f"{key}\n" for key, _ in pairs))
        env[f"CAIRN_INPUT_{env_name(inp)}"] = str(folder)
        env[f"CAIRN_INPUT_{env_name(inp)}_KEYS"] = str(index)
    for out in outputs:
        env[f"CAIRN_OUTPUT_{env_name(out)}"] = str(outdir / out)
        if out in dyn:
            (outdir / out).mkdir(parents=True, exist_ok=True)
    try:
        code = subprocess.call(command, env=env)
    except OSError as exc:
        raise InvocationError(f"cannot run {command[0]!r}: {exc}") from exc
    if code != 0:
        result.update(
            status=ResultStatus.FAILURE, error={"type": "CommandFailed", "message": f"{command[0]} exited {code}"}
        )
    else:
        missing = [
            o
            for o in outputs
            if o not in optional and not ((outdir / o).is_dir() if o in dyn else (outdir / o).is_file())
        ]
        if missing:
            result.update(
                status=ResultStatus.FAILURE,
                error={
                    "type": "MissingOutput",
                    "message": "the command wrote no "
                    + ", ".join(f"{o} (to $CAIRN_OUTPUT_{env_name(o)})" for o in missing),
                },
            )
        else:
            try:
                keyed = {o: _dynamic_files(step, o, outdir / o) for o in outputs if o in dyn and (outdir / o).is_dir()}
            except CairnError as exc:
                result.update(
                    status=ResultStatus.FAILURE, error={"type": type(exc).__name__, "message": str(exc)[:2000]}
                )
            else:
                for o in outputs:
                    path = outdir / o
                    if o in keyed:
                        for key, file in keyed[o]:  # each key's file, streamed, at <index key>[<key>]
                            io.store(
                                output_key(run_id, step, f"{o}[{key}]", namespace=namespace), FileSource(file), "bytes"
                            )
                        ks = [key for key, _ in keyed[o]]
                        stored_index = io.store(output_key(run_id, step, o, namespace=namespace), ks, "json")
                        result["outputs"][o] = _reported(stored_index, "json")
                        result.setdefault("dynamic", {})[o] = {"count": len(ks)}
                    elif path.is_file():
                        key = output_key(run_id, step, o, namespace=namespace)
                        stored = io.store(key, FileSource(path), "bytes")  # streamed from the file
                        result["outputs"][o] = _reported(stored, "bytes")
                result["status"] = ResultStatus.SUCCESS
    result["duration_s"] = round(time.monotonic() - t0, 4)
    return result, (code or (1 if result["status"] == ResultStatus.FAILURE else 0))


def _dynamic_files(step: str, output: str, folder: Path) -> list[tuple[str, Path]]:
    """The keys a command wrote to a dynamic output's directory: (file name, file), in sorted name order;
    MappingKeyError for a name that is no mapping key, CairnError for anything but a regular file."""
    out: list[tuple[str, Path]] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.is_file():
            raise CairnError(
                f"step {step}: dynamic output {output} has {path.name!r}, which is not a regular file; write one "
                f"file per mapping key to $CAIRN_OUTPUT_{env_name(output)}"
            )
        out.append((dynamic.check_key(step, output, path.name), path))
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    """`dst` with the bytes of `src`: a hard link (no second copy on disk), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


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
    x.add_argument(
        "--dynamic-output",
        action="append",
        default=[],
        metavar="NAME",
        help="a dynamic output (repeatable): $CAIRN_OUTPUT_<NAME> is a directory, one file per mapping key",
    )
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
            "status": ResultStatus.FAILURE,
            "error": {"type": type(exc).__name__, "message": str(exc)[:2000]},
            "invocation_error": True,
        }
        print(f"cairn.step: error: {exc}", file=sys.stderr)
        _write(path, result_message(message))
        return 2
    _write(path, result_message(result))
    print(json.dumps({k: v for k, v in result.items() if k != "error"}), file=sys.stderr)
    return 0 if result["status"] == ResultStatus.SUCCESS else 1


def _main_exec(args: argparse.Namespace, path: Path) -> int:
    import tempfile

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    outputs = [o for o in args.outputs.split(",") if o]
    optional = [o for o in args.optional_outputs.split(",") if o]
    try:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cairn-step-"))
        result, code = exec_command(
            args.run_id, args.step, outputs, optional, cmd, read_context(args.context), workdir, args.dynamic_output
        )
    except CairnError as exc:
        print(f"cairn.step: error: {exc}", file=sys.stderr)
        message = {
            "protocol": PROTOCOL,
            "run_id": args.run_id,
            "step": args.step,
            "status": ResultStatus.FAILURE,
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
