"""Building helm from its Go module: the cache, the stamps and the error messages (a fake `go` on PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn_dev.builds import helm
from cairn_dev.builds.helm import HelmBuilder, find_helm, helm_layout, kube_version, ldflags
from cairn_dev.builds.k8s import Builder, BuildError
from cairn_dev.builds.kstatus import CLI_UTILS_VERSION, KstatusBuilder
from cairn_dev.versions import HELM_VERSION
from tests.unit import fakego

HELM_GOMOD = """module helm.sh/helm/v3

go 1.26.0

require (
\tgithub.com/Masterminds/semver/v3 v3.4.0
\tk8s.io/api v0.37.0
\tk8s.io/client-go v0.37.0
)
"""

# A fake `go`: every call is appended to $FAKE_GO_CALLS (arguments, then GOBIN and CGO_ENABLED), and
# `go install` writes a `helm` into $GOBIN that prints $FAKE_HELM_VERSION. FAKE_GO_FAIL=install|download
# makes that step fail as the real toolchain does.
FAKE_GO = """#!/bin/sh
echo "$* | GOBIN=$GOBIN CGO_ENABLED=$CGO_ENABLED GOTOOLCHAIN=$GOTOOLCHAIN" >> "$FAKE_GO_CALLS"
case "$1" in
env) echo "${FAKE_GO_VERSION:-go1.26.1}" ;;
mod)
  if [ "$FAKE_GO_FAIL" = download ]; then
    echo '{"Path": "helm.sh/helm/v3", "Error": "reading https://proxy.golang.org: 403 Forbidden"}'
    exit 1
  fi
  printf '{"Path": "helm.sh/helm/v3", "GoMod": "%s", "Origin": {"Hash": "0123abcd"}}\\n' "$FAKE_GOMOD" ;;
install)
  if [ "$FAKE_GO_FAIL" = install ]; then
    echo "# helm.sh/helm/v3/pkg/action" >&2
    echo "pkg/action/install.go:42:2: undefined: somethingMissing" >&2
    exit 1
  fi
  printf '#!/bin/sh\\necho %s\\n' "${FAKE_HELM_VERSION:-v3.22.0}" > "$GOBIN/helm"
  chmod +x "$GOBIN/helm" ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `go` first on PATH; returns the file its calls are recorded in."""
    calls = fakego.install(tmp_path, monkeypatch, FAKE_GO)
    gomod = tmp_path / "helm.mod"
    gomod.write_text(HELM_GOMOD)
    monkeypatch.setenv("FAKE_GOMOD", str(gomod))
    monkeypatch.delenv("GOBIN", raising=False)
    return calls


_calls = fakego.calls


def test_build_installs_the_pinned_release_stamped_and_a_second_call_is_instant(tmp_path: Path, fake_go: Path) -> None:
    said: list[str] = []
    lay = HelmBuilder(cache=tmp_path / "c", say=said.append).build()
    assert lay.helm == tmp_path / "c" / "helm" / HELM_VERSION / "bin" / "helm"
    assert lay.complete() and find_helm(cache=tmp_path / "c") == lay.helm
    assert not (lay.root / "bin.partial").exists()
    calls = _calls(fake_go)
    assert [c.split()[0] for c in calls] == ["env", "mod", "install"]
    install = calls[2]
    assert f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION} |" in install
    assert f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}" in install
    assert "-X helm.sh/helm/v3/internal/version.gitCommit=0123abcd" in install
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in install  # from its client-go v0.37.0
    assert f"GOBIN={lay.root / 'bin.partial'} CGO_ENABLED=0 GOTOOLCHAIN=local" in install
    assert "-trimpath" in install
    assert any("built in" in m for m in said)

    said.clear()
    again = HelmBuilder(cache=tmp_path / "c", say=said.append).build()
    assert again.helm == lay.helm
    assert len(_calls(fake_go)) == 3  # no go call at all
    assert said == [f"helm {HELM_VERSION} already built: {lay.helm}"]


def test_a_cached_helm_needs_no_go_at_all(tmp_path: Path, fake_go: Path) -> None:
    lay = helm_layout(cache=tmp_path)
    lay.bin.mkdir(parents=True)
    lay.helm.write_text("#!/bin/sh\n")
    lay.stamp.write_text(HELM_VERSION + "\n")
    assert HelmBuilder(cache=tmp_path, say=lambda _: None, go="").build() == lay
    assert HelmBuilder(cache=tmp_path, say=lambda _: None).build() == lay
    assert _calls(fake_go) == []


def test_force_rebuilds_a_cached_helm(tmp_path: Path, fake_go: Path) -> None:
    HelmBuilder(cache=tmp_path, say=lambda _: None).build()
    HelmBuilder(cache=tmp_path, say=lambda _: None).build(force=True)
    assert [c.split()[0] for c in _calls(fake_go)] == ["env", "mod", "install"] * 2


def test_no_go_on_path_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    with pytest.raises(BuildError, match=r"no Go toolchain on PATH.*helm v3\.22\.0.*Go 1\.26 or newer"):
        HelmBuilder(cache=tmp_path / "c", say=lambda _: None).build()
    assert not helm_layout(cache=tmp_path / "c").complete()


def test_an_old_go_is_a_clear_error(tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", "go1.25.7")
    with pytest.raises(BuildError, match=r"reports 'go1\.25\.7'; helm v3\.22\.0 needs Go 1\.26 or newer"):
        HelmBuilder(cache=tmp_path / "c", say=lambda _: None).build()


def test_a_failed_build_shows_the_last_lines_of_its_log(
    tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "install")
    b = HelmBuilder(cache=tmp_path / "c", say=lambda _: None)
    with pytest.raises(BuildError) as err:
        b.build()
    msg = str(err.value)
    assert "go install helm failed (exit 1)" in msg
    assert "undefined: somethingMissing" in msg
    assert str(b.layout.log) in msg
    assert not b.layout.complete()
    with pytest.raises(BuildError, match="run `cairn dev build`"):
        find_helm(cache=tmp_path / "c")


def test_a_failed_download_shows_the_proxy_error(
    tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "download")
    with pytest.raises(BuildError, match=r"go mod download failed \(exit 1\)(.|\n)*403 Forbidden"):
        HelmBuilder(cache=tmp_path / "c", say=lambda _: None).build()


def test_a_binary_that_reports_another_version_is_refused(
    tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_HELM_VERSION", "v3.22")  # what an unstamped build says
    with pytest.raises(BuildError, match=r"reports 'v3\.22' \(exit 0\), not v3\.22\.0"):
        HelmBuilder(cache=tmp_path / "c", say=lambda _: None).build()
    assert not helm_layout(cache=tmp_path / "c").complete()


def test_find_helm_says_to_run_build(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"helm v3\.22\.0 is not built yet.*run `cairn dev build`"):
        find_helm(cache=tmp_path)


def test_find_helm_honours_the_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path))
    assert helm_layout().helm == tmp_path / "helm" / HELM_VERSION / "bin" / "helm"


def test_kube_version_follows_helms_makefile() -> None:
    assert kube_version(HELM_GOMOD) == ("1", "37")
    assert kube_version("module x\n\nrequire k8s.io/client-go v0.34.2\n") == ("1", "34")
    assert kube_version("module x\n") is None


def test_ldflags_stamp_the_release() -> None:
    flags = ldflags("v3.22.0", "abc", ("1", "37"))
    assert flags.startswith("-s -w ")
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in flags
    assert "-X helm.sh/helm/v3/internal/version.gitTreeState=clean" in flags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in flags
    assert "gitCommit" not in ldflags("v3.22.0") and "k8sVersion" not in ldflags("v3.22.0")


def test_pinned_version_and_minimum_go() -> None:
    assert HELM_VERSION == "v3.22.0"
    assert helm.MIN_GO == (1, 26)


def test_cairn_dev_build_builds_helm_after_kubernetes_with_force_for_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.cli import main

    done: list[tuple[str, str, bool]] = []

    def k8s_build(self: Builder, force: bool = False) -> None:
        done.append(("kubernetes", self.version, force))

    def helm_build(self: HelmBuilder, force: bool = False) -> None:
        done.append(("helm", self.version, force))

    def kstatus_build(self: KstatusBuilder, force: bool = False) -> None:
        done.append(("kstatus", self.version, force))

    monkeypatch.setattr(Builder, "build", k8s_build)
    monkeypatch.setattr(HelmBuilder, "build", helm_build)
    monkeypatch.setattr(KstatusBuilder, "build", kstatus_build)
    assert main(["dev", "build", "--cache", str(tmp_path)]) == 0
    assert main(["dev", "build", "--cache", str(tmp_path), "--force", "--version", "v1.34.5"]) == 0
    assert done == [
        ("kubernetes", "v1.34.4", False),
        ("helm", HELM_VERSION, False),
        ("kstatus", CLI_UTILS_VERSION, False),
        ("kubernetes", "v1.34.5", True),
        ("helm", HELM_VERSION, True),
        ("kstatus", CLI_UTILS_VERSION, True),
    ]
