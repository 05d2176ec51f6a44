"""Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kubelet from Go modules.

`cairn dev build` compiles the Kubernetes control plane from the Go module ``k8s.io/kubernetes`` at
one pinned release (:data:`cairn_dev.versions.K8S_VERSION`). ``k8s.io/kubernetes`` cannot be required
as an ordinary dependency because its go.mod replaces every ``k8s.io/*`` staging module with a local
directory; a small helper module therefore repeats those ``replace`` lines, each pointing at the
published ``v0.x.y`` release of the same staging module. The lines are generated from the replace
block of the release's own go.mod, so they always match the release.

Binaries are cached under ``<cache>/k8s/<version>/bin`` and reused; a build writes its full log to
``<cache>/k8s/<version>/build.log`` and a failure shows its last lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn_dev import paths
from cairn_dev.errors import DevError
from cairn_dev.versions import K8S_VERSION, staging_version

#: What `cairn dev build` produces, in build order, with the package of each.
BINARIES: tuple[tuple[str, str], ...] = (
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
    ("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
)

#: The oldest Go toolchain that builds the pinned release (its go.mod says ``go 1.24.0``).
MIN_GO = (1, 24)

HELPER_MODULE = "cairn.dev/k8sbuild"

_REPLACE_RE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._/-]+)\s*=>\s*\./staging/src/(k8s\.io/[A-Za-z0-9._/-]+)\s*$")


class BuildError(DevError):
    """The Kubernetes binaries could not be built; the message says why and what to do."""


def replace_lines(kubernetes_gomod: str, staging: str) -> list[str]:
    """Turn the staging ``replace`` block of k8s.io/kubernetes's go.mod into published pins.

    Each ``k8s.io/X => ./staging/src/k8s.io/X`` becomes ``k8s.io/X => k8s.io/X <staging>``. Lines that
    replace something other than a staging directory are not ours to repeat and are left out.
    """
    out: list[str] = []
    in_block = False
    for raw in kubernetes_gomod.splitlines():
        stripped = raw.split("//", 1)[0].strip()
        if stripped == "replace (":
            in_block = True
            continue
        if in_block and stripped == ")":
            in_block = False
            continue
        if in_block:
            candidate = stripped
        elif stripped.startswith("replace "):
            candidate = stripped[len("replace ") :]
        else:
            continue
        m = _REPLACE_RE.match(candidate)
        if m and m.group(1) == m.group(2):
            out.append(f"{m.group(1)} => {m.group(1)} {staging}")
    if not out:
        raise BuildError(
            "the go.mod of k8s.io/kubernetes has no `replace k8s.io/X => ./staging/src/k8s.io/X` lines; "
            "is the pinned version a real Kubernetes release?"
        )
    return sorted(out)


def render_gomod(version: str, replaces: Sequence[str]) -> str:
    """The helper module's go.mod: require the release and pin its staging modules."""
    body = "\n".join(f"\t{r}" for r in replaces)
    return (
        f"module {HELPER_MODULE}\n\n"
        "go 1.24.0\n\n"
        "godebug default=go1.24\n\n"
        f"require k8s.io/kubernetes {version}\n\n"
        f"replace (\n{body}\n)\n"
    )


def render_tools_go() -> str:
    """A build-tagged file importing each command, so that `go mod tidy` records their dependencies."""
    imports = "\n".join(f'\t_ "{pkg}"' for _, pkg in BINARIES)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def ldflags(version: str) -> str:
    """Stamp the release into the binaries, as Kubernetes' own build does (kubectl checks it)."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "k8s.io/component-base/version.gitVersion": version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": version,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
    }
    return "-s -w " + " ".join(f"-X {k}={v}" for k, v in stamps.items())


def parse_go_version(text: str) -> tuple[int, int] | None:
    """``go1.26.8`` -> (1, 26); None when the text is not a Go version."""
    m = re.search(r"go(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class BuildLayout:
    """Where one version's helper module, binaries and log live."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def stamp(self) -> Path:
        return self.bin / ".complete"

    def binary(self, name: str) -> Path:
        return self.bin / name

    def complete(self) -> bool:
        return self.stamp.is_file() and all(self.binary(n).is_file() for n, _ in BINARIES)


def layout(version: str = K8S_VERSION, cache: Path | None = None) -> BuildLayout:
    return BuildLayout((cache or paths.cache_dir()) / "k8s" / version)


def find_binaries(version: str = K8S_VERSION, cache: Path | None = None) -> BuildLayout:
    """The built binaries, or a BuildError that says to run `cairn dev build`."""
    lay = layout(version, cache)
    if not lay.complete():
        raise BuildError(
            f"the Kubernetes {version} binaries are not built yet (looked in {lay.bin}); "
            "run `cairn dev build` first (the first build takes several minutes)"
        )
    return lay


def require_go(go: str, minimum: tuple[int, int], product: str) -> None:
    """A BuildError unless `go` is a Go toolchain at least `minimum` (`product` is what it compiles)."""
    want = f"Go {minimum[0]}.{minimum[1]} or newer"
    if not go:
        raise BuildError(
            f"no Go toolchain on PATH: `cairn dev build` compiles {product} from source and needs {want} "
            "(https://go.dev/doc/install, or your distribution's golang package)"
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    found = parse_go_version(out.stdout)
    if found is None or found < minimum:
        raise BuildError(f"{go} reports {out.stdout.strip() or out.stderr.strip()!r}; {product} needs {want}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Builder:
    """Runs the Go toolchain; `say` reports progress to the user."""

    def __init__(
        self,
        version: str = K8S_VERSION,
        cache: Path | None = None,
        say: Callable[[str], None] = print,
        go: str | None = None,
        tick: float = 30.0,
    ) -> None:
        self.version = version
        self.layout = layout(version, cache)
        self.say = say
        self.tick = tick
        self.go = (shutil.which("go") or "") if go is None else go

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("GOFLAGS", "-buildvcs=false")
        env["GOTOOLCHAIN"] = "local"
        return env

    def _run(self, args: list[str], what: str, cwd: Path) -> str:
        """Run one Go command, its stderr into the build log; say every `tick` seconds that it still runs."""
        out_path = self.layout.root / ".stdout"
        started = time.monotonic()
        with self.layout.log.open("a") as log, out_path.open("w+") as out:
            log.write(f"\n$ {' '.join(args)}\n")
            log.flush()
            proc = subprocess.Popen(args, cwd=cwd, env=self._env(), stdout=out, stderr=log, text=True)
            while True:
                try:
                    code = proc.wait(timeout=self.tick)
                    break
                except subprocess.TimeoutExpired:
                    self.say(f"      ... {what}: {time.monotonic() - started:.0f}s")
            out.seek(0)
            stdout = out.read()
            if what != "download":
                log.write(stdout)
        out_path.unlink()
        if code != 0:
            raise BuildError(
                f"{what} failed (exit {code}); full log: {self.layout.log}\nlast lines:\n{_tail(self.layout.log)}"
            )
        return stdout

    def check_go(self) -> None:
        require_go(self.go, MIN_GO, f"Kubernetes {self.version}")

    def build(self, force: bool = False) -> BuildLayout:
        lay = self.layout
        if lay.complete() and not force:
            self.say(f"Kubernetes {self.version} binaries already built in {lay.bin}")
            return lay
        self.check_go()
        lay.root.mkdir(parents=True, exist_ok=True)
        lay.src.mkdir(exist_ok=True)
        lay.log.write_text(f"cairn dev build {self.version} at {time.ctime()}\n")
        started = time.monotonic()

        self.say(f"[1/{len(BINARIES) + 2}] fetching k8s.io/kubernetes@{self.version} from the Go module proxy")
        info = json.loads(
            self._run(
                [self.go, "mod", "download", "-json", f"k8s.io/kubernetes@{self.version}"],
                "download",
                cwd=lay.src,
            )
        )
        if info.get("Error"):
            raise BuildError(f"cannot download k8s.io/kubernetes@{self.version}: {info['Error']}")
        gomod = Path(info["GoMod"]).read_text()
        replaces = replace_lines(gomod, staging_version(self.version))
        (lay.src / "go.mod").write_text(render_gomod(self.version, replaces))
        (lay.src / "tools.go").write_text(render_tools_go())
        (lay.src / "go.sum").touch()

        self.say(f"[2/{len(BINARIES) + 2}] resolving dependencies (go mod tidy, {len(replaces)} staging pins)")
        self._run([self.go, "mod", "tidy"], "go mod tidy", cwd=lay.src)

        tmp_bin = lay.root / "bin.partial"
        shutil.rmtree(tmp_bin, ignore_errors=True)
        tmp_bin.mkdir()
        flags = ldflags(self.version)
        for i, (name, pkg) in enumerate(BINARIES, start=3):
            t0 = time.monotonic()
            self.say(f"[{i}/{len(BINARIES) + 2}] go build {name} (the first build takes minutes) ...")
            self._run(
                [self.go, "build", "-trimpath", "-ldflags", flags, "-o", str(tmp_bin / name), pkg],
                f"go build {name}",
                cwd=lay.src,
            )
            self.say(f"      {name} built in {time.monotonic() - t0:.0f}s")
        (tmp_bin / ".complete").write_text(self.version + "\n")
        if lay.bin.exists():
            shutil.rmtree(lay.bin)
        tmp_bin.rename(lay.bin)
        self.say(f"Kubernetes {self.version} built in {time.monotonic() - started:.0f}s: {lay.bin}")
        return lay
