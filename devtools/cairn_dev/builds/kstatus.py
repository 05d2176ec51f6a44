"""Build `kstatus`, a tiny command around the real kstatus library, to check what tools read from our status.

kstatus (``sigs.k8s.io/cli-utils/pkg/kstatus/status``) is how kubectl-adjacent tools (kpt, Flux,
Config Sync, cli-utils' own apply/wait) decide whether an object is ``InProgress``, ``Current`` or
``Failed``: from ``metadata.generation`` against ``status.observedGeneration`` and from the
``Reconciling``/``Stalled``/``Ready`` conditions. The Cairn operator follows that contract; this module
compiles the library's own ``status.Compute`` into a command so tests can check a Run or Reexecution
against it rather than against our reading of it.

The Go source is :file:`kstatus_main.go` next to this module (package data). A build writes a helper
module (``go.mod`` requiring ``sigs.k8s.io/cli-utils`` at :data:`CLI_UTILS_VERSION``), runs ``go mod
tidy`` and ``go build`` (static, ``CGO_ENABLED=0``) and checks the result. The binary is cached as
``<cache>/kstatus/<version>/bin/kstatus`` and reused; its stamp records a digest of main.go, so
editing the source rebuilds it. The full log is ``<cache>/kstatus/<version>/build.log``.

The command reads JSON (one object, a List, an array, or several documents) on stdin or from files
and prints one JSON line per object: ``{"apiVersion", "kind", "namespace", "name", "status",
"message"}``; :func:`compute` runs it from Python.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn_dev import paths
from cairn_dev.builds.k8s import Builder, BuildError, BuildLayout, require_go

MODULE = "sigs.k8s.io/cli-utils"
HELPER_MODULE = "cairn.dev/kstatus"

#: The cli-utils release whose kstatus is compiled (the newest the Go module proxy serves).
CLI_UTILS_VERSION = "v0.37.2"

#: The oldest Go toolchain that builds it (cli-utils v0.37.2's go.mod says ``go 1.22.0``).
MIN_GO = (1, 22)

#: The Go source of the command, shipped as package data.
SOURCE = Path(__file__).resolve().parent / "kstatus_main.go"

#: What kstatus can answer (``status.Status`` in cli-utils), plus Unknown when Compute returns an error.
STATUSES = ("InProgress", "Failed", "Current", "Terminating", "NotFound", "Unknown")


def source_digest(source: Path = SOURCE) -> str:
    """A short digest of main.go; part of the stamp, so a changed source is rebuilt."""
    try:
        return hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise BuildError(
            f"the kstatus Go source is missing ({source}): is cairn installed with its package data?"
        ) from exc


def render_gomod(version: str) -> str:
    """The helper module's go.mod before `go mod tidy` completes it."""
    return f"module {HELPER_MODULE}\n\ngo 1.22.0\n\nrequire {MODULE} {version}\n"


def stamp_text(version: str, digest: str) -> str:
    return f"{version} {digest}\n"


@dataclass(frozen=True)
class KstatusLayout(BuildLayout):
    """Where one cli-utils version's helper module, binary, stamp and log live."""

    @property
    def kstatus(self) -> Path:
        return self.binary("kstatus")

    def complete(self, digest: str | None = None) -> bool:
        """Built, and (when `digest` is given) built from that source."""
        if not (self.stamp.is_file() and self.kstatus.is_file()):
            return False
        if digest is None:
            return True
        try:
            return self.stamp.read_text().split()[1:2] == [digest]
        except OSError:
            return False


def kstatus_layout(version: str = CLI_UTILS_VERSION, cache: Path | None = None) -> KstatusLayout:
    return KstatusLayout((cache or paths.cache_dir()) / "kstatus" / version)


def find_kstatus(version: str = CLI_UTILS_VERSION, cache: Path | None = None) -> Path:
    """The built kstatus binary, or a BuildError that says how to build it."""
    lay = kstatus_layout(version, cache)
    if not lay.complete():
        raise BuildError(
            f"kstatus (sigs.k8s.io/cli-utils {version}) is not built yet (looked for {lay.kstatus}); "
            "build it with `python -c 'from cairn_dev.builds import kstatus; kstatus.build()'` "
            "(needs Go and the Go module proxy; about a minute the first time)"
        )
    return lay.kstatus


class KstatusBuilder(Builder):
    """`go build` of the kstatus command into the cache; progress, log and errors as :class:`Builder` reports them."""

    layout: KstatusLayout

    def __init__(
        self,
        version: str = CLI_UTILS_VERSION,
        cache: Path | None = None,
        say: Callable[[str], None] = print,
        go: str | None = None,
        tick: float = 30.0,
        source: Path = SOURCE,
    ) -> None:
        super().__init__(version=version, cache=cache, say=say, go=go, tick=tick)
        self.layout = kstatus_layout(version, cache)
        self.source = source

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["CGO_ENABLED"] = "0"
        return env

    def check_go(self) -> None:
        require_go(self.go, MIN_GO, f"kstatus ({MODULE} {self.version})")

    def build(self, force: bool = False) -> KstatusLayout:
        lay = self.layout
        digest = source_digest(self.source)
        if lay.complete(digest) and not force:
            self.say(f"kstatus ({MODULE} {self.version}) already built: {lay.kstatus}")
            return lay
        self.check_go()
        lay.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(lay.src, ignore_errors=True)
        lay.src.mkdir()
        lay.log.write_text(f"kstatus build: {MODULE} {self.version} at {time.ctime()}\n")
        started = time.monotonic()

        (lay.src / "go.mod").write_text(render_gomod(self.version))
        (lay.src / "go.sum").touch()
        shutil.copyfile(self.source, lay.src / "main.go")
        self.say(f"[1/3] resolving {MODULE}@{self.version} and its dependencies (go mod tidy)")
        self._run([self.go, "mod", "tidy"], "go mod tidy", cwd=lay.src)

        tmp_bin = lay.root / "bin.partial"
        shutil.rmtree(tmp_bin, ignore_errors=True)
        tmp_bin.mkdir()
        built = tmp_bin / "kstatus"
        self.say("[2/3] go build kstatus ...")
        self._run(
            [self.go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(built), "."],
            "go build kstatus",
            cwd=lay.src,
        )

        self.say("[3/3] checking the binary (kstatus -version)")
        if not built.is_file():
            raise BuildError(f"go build reported success but wrote no {built}; full log: {lay.log}")
        try:
            out = subprocess.run([str(built), "-version"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"the built {built} does not run: {exc}") from exc
        if out.returncode != 0 or out.stdout.strip() != self.version:
            raise BuildError(
                f"the built kstatus reports {(out.stdout or out.stderr).strip()!r} (exit {out.returncode}), "
                f"not {MODULE} {self.version}; full log: {lay.log}"
            )
        (tmp_bin / ".complete").write_text(stamp_text(self.version, digest))
        if lay.bin.exists():
            shutil.rmtree(lay.bin)
        tmp_bin.rename(lay.bin)
        self.say(f"kstatus ({MODULE} {self.version}) built in {time.monotonic() - started:.0f}s: {lay.kstatus}")
        return lay


def build(force: bool = False, say: Callable[[str], None] = print, cache: Path | None = None) -> Path:
    """Build (or reuse) kstatus and return the binary."""
    return KstatusBuilder(cache=cache, say=say).build(force=force).kstatus


@dataclass(frozen=True)
class KStatus:
    """What kstatus computed for one object."""

    kind: str
    name: str
    namespace: str
    status: str
    message: str


def compute(objs: Mapping[str, Any] | Iterable[Mapping[str, Any]], binary: Path | None = None) -> list[KStatus]:
    """Run kstatus on one object or several; one result per object, in order."""
    docs = [objs] if isinstance(objs, Mapping) else list(objs)
    exe = binary or find_kstatus()
    proc = subprocess.run(
        [str(exe)],
        input="\n".join(json.dumps(d) for d in docs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise BuildError(f"kstatus failed (exit {proc.returncode}): {proc.stderr.strip()}")
    out: list[KStatus] = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out.append(KStatus(r.get("kind", ""), r.get("name", ""), r.get("namespace", ""), r["status"], r["message"]))
    return out
