"""Build helm from its Go module, so that charts/cairn is linted and rendered by the real Helm.

`cairn dev build` also compiles helm at one pinned release (:data:`cairn_dev.versions.HELM_VERSION`)
with ``go install helm.sh/helm/v3/cmd/helm@<version>``: in that form Go builds the release with its
own go.mod and go.sum, so no helper module is needed (unlike k8s.io/kubernetes, see
:mod:`cairn_dev.builds.k8s`). The binary is stamped as Helm's own Makefile stamps a release: its version
(``helm version``), git commit and tree state, and the Kubernetes version of the client-go it is built
with (what ``helm template`` reports as ``.Capabilities.KubeVersion`` and ``helm lint`` checks API
deprecations against). It is static (``CGO_ENABLED=0``), as Helm's releases are.

The binary is cached as ``<cache>/helm/<version>/bin/helm`` and reused; a build writes its full log
to ``<cache>/helm/<version>/build.log`` and a failure shows its last lines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn_dev import paths
from cairn_dev.builds.k8s import Builder, BuildError, BuildLayout, require_go
from cairn_dev.versions import HELM_VERSION

MODULE = "helm.sh/helm/v3"
PACKAGE = f"{MODULE}/cmd/helm"

#: The oldest Go toolchain that builds the pinned release (its go.mod says ``go 1.26.0``).
MIN_GO = (1, 26)

_CLIENT_GO_RE = re.compile(r"^\s*(?:require\s+)?k8s\.io/client-go\s+v(\d+)\.(\d+)\.\d+", re.MULTILINE)


def kube_version(helm_gomod: str) -> tuple[str, str] | None:
    """The Kubernetes (major, minor) of the client-go Helm requires: v0.34.2 -> ("1", "34"), as its Makefile says."""
    m = _CLIENT_GO_RE.search(helm_gomod)
    return (str(int(m.group(1)) + 1), m.group(2)) if m else None


def ldflags(version: str, commit: str = "", kube: tuple[str, str] | None = None) -> str:
    """Stamp the release into the binary the way Helm's Makefile does for a tagged build."""
    stamps = {
        f"{MODULE}/internal/version.version": version,
        f"{MODULE}/internal/version.gitTreeState": "clean",
    }
    if commit:
        stamps[f"{MODULE}/internal/version.gitCommit"] = commit
    if kube is not None:
        for pkg in ("pkg/lint/rules", "pkg/chartutil"):
            stamps[f"{MODULE}/{pkg}.k8sVersionMajor"] = kube[0]
            stamps[f"{MODULE}/{pkg}.k8sVersionMinor"] = kube[1]
    return "-s -w " + " ".join(f"-X {k}={v}" for k, v in stamps.items())


@dataclass(frozen=True)
class HelmLayout(BuildLayout):
    """Where one helm version's binary, stamp and log live (``bin``, ``log``, ``stamp`` as for Kubernetes)."""

    @property
    def helm(self) -> Path:
        return self.binary("helm")

    def complete(self) -> bool:
        return self.stamp.is_file() and self.helm.is_file()


def helm_layout(version: str = HELM_VERSION, cache: Path | None = None) -> HelmLayout:
    return HelmLayout((cache or paths.cache_dir()) / "helm" / version)


def find_helm(version: str = HELM_VERSION, cache: Path | None = None) -> Path:
    """The built helm binary, or a BuildError that says to run `cairn dev build`."""
    lay = helm_layout(version, cache)
    if not lay.complete():
        raise BuildError(
            f"helm {version} is not built yet (looked for {lay.helm}); run `cairn dev build` first "
            "(it builds helm from its Go module after the Kubernetes binaries)"
        )
    return lay.helm


class HelmBuilder(Builder):
    """`go install` of helm into the cache; progress, log and errors as :class:`Builder` reports them."""

    layout: HelmLayout

    def __init__(
        self,
        version: str = HELM_VERSION,
        cache: Path | None = None,
        say: Callable[[str], None] = print,
        go: str | None = None,
        tick: float = 30.0,
    ) -> None:
        super().__init__(version=version, cache=cache, say=say, go=go, tick=tick)
        self.layout = helm_layout(version, cache)
        self._gobin: Path | None = None

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["CGO_ENABLED"] = "0"
        if self._gobin is not None:
            env["GOBIN"] = str(self._gobin)
        return env

    def check_go(self) -> None:
        require_go(self.go, MIN_GO, f"helm {self.version}")

    def build(self, force: bool = False) -> HelmLayout:
        lay = self.layout
        if lay.complete() and not force:
            self.say(f"helm {self.version} already built: {lay.helm}")
            return lay
        self.check_go()
        lay.root.mkdir(parents=True, exist_ok=True)
        lay.log.write_text(f"cairn dev build: helm {self.version} at {time.ctime()}\n")
        started = time.monotonic()

        self.say(f"[1/3] fetching {MODULE}@{self.version} from the Go module proxy")
        info = json.loads(
            self._run(
                [self.go, "mod", "download", "-json", f"{MODULE}@{self.version}"], "go mod download", cwd=lay.root
            )
            or "{}"
        )
        if info.get("Error") or not info.get("GoMod"):
            raise BuildError(f"cannot download {MODULE}@{self.version}: {info.get('Error') or 'no go.mod'}")
        kube = kube_version(Path(info["GoMod"]).read_text())
        commit = str((info.get("Origin") or {}).get("Hash") or "")

        tmp_bin = lay.root / "bin.partial"
        shutil.rmtree(tmp_bin, ignore_errors=True)
        tmp_bin.mkdir()
        self._gobin = tmp_bin
        t0 = time.monotonic()
        self.say(f"[2/3] go install {PACKAGE}@{self.version} (the first build takes a few minutes) ...")
        try:
            self._run(
                [
                    self.go,
                    "install",
                    "-trimpath",
                    "-ldflags",
                    ldflags(self.version, commit, kube),
                    f"{PACKAGE}@{self.version}",
                ],
                "go install helm",
                cwd=lay.root,
            )
        finally:
            self._gobin = None
        self.say(f"      helm built in {time.monotonic() - t0:.0f}s")

        self.say("[3/3] checking the binary (helm version)")
        built = tmp_bin / "helm"
        if not built.is_file():
            raise BuildError(f"go install reported success but wrote no {built}; full log: {lay.log}")
        try:
            out = subprocess.run(
                [str(built), "version", "--template", "{{.Version}}"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"the built {built} does not run: {exc}") from exc
        if out.returncode != 0 or out.stdout.strip() != self.version:
            raise BuildError(
                f"the built helm reports {(out.stdout or out.stderr).strip()!r} (exit {out.returncode}), "
                f"not {self.version}; full log: {lay.log}"
            )
        (tmp_bin / ".complete").write_text(self.version + "\n")
        if lay.bin.exists():
            shutil.rmtree(lay.bin)
        tmp_bin.rename(lay.bin)
        self.say(f"helm {self.version} built in {time.monotonic() - started:.0f}s: {lay.helm}")
        return lay
