"""Building the kstatus command from cli-utils: the cache, the source digest and the errors (a fake `go` on PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn_dev.builds.k8s import BuildError
from cairn_dev.builds.kstatus import (
    CLI_UTILS_VERSION,
    SOURCE,
    KstatusBuilder,
    compute,
    find_kstatus,
    kstatus_layout,
    render_gomod,
    source_digest,
)
from tests.unit import fakego

# A fake `go`: every call is appended to $FAKE_GO_CALLS (arguments, the directory, CGO_ENABLED and
# GOTOOLCHAIN); `go build -o X` writes an X that answers `-version` with $FAKE_KSTATUS_VERSION and
# otherwise prints one fixed kstatus line. FAKE_GO_FAIL=tidy|build makes that step fail as Go does.
FAKE_GO = """#!/bin/sh
echo "$* | PWD=$PWD CGO_ENABLED=$CGO_ENABLED GOTOOLCHAIN=$GOTOOLCHAIN GOFLAGS=$GOFLAGS" >> "$FAKE_GO_CALLS"
case "$1" in
env) echo "${FAKE_GO_VERSION:-go1.26.1}" ;;
mod)
  if [ "$FAKE_GO_FAIL" = tidy ]; then
    echo "go: sigs.k8s.io/cli-utils@v0.37.2: reading https://proxy.golang.org: 403 Forbidden" >&2
    exit 1
  fi ;;
build)
  if [ "$FAKE_GO_FAIL" = build ]; then
    echo "./main.go:42:2: undefined: somethingMissing" >&2
    exit 1
  fi
  while [ "$1" != "-o" ]; do shift; done
  cat > "$2" <<EOT
#!/bin/sh
if [ "\\$1" = -version ]; then echo ${FAKE_KSTATUS_VERSION:-v0.37.2}; exit 0; fi
cat > /dev/null
echo '{"apiVersion":"cairn.dev/v1alpha1","kind":"Run","namespace":"n","name":"r","status":"Current","message":"ok"}'
EOT
  chmod +x "$2" ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `go` first on PATH; returns the file its calls are recorded in."""
    calls = fakego.install(tmp_path, monkeypatch, FAKE_GO)
    monkeypatch.delenv("GOFLAGS", raising=False)
    return calls


_calls = fakego.calls


def test_the_go_source_ships_with_the_package() -> None:
    text = SOURCE.read_text()
    assert '"sigs.k8s.io/cli-utils/pkg/kstatus/status"' in text and "status.Compute(" in text
    assert render_gomod("v0.37.2") == "module cairn.dev/kstatus\n\ngo 1.22.0\n\nrequire sigs.k8s.io/cli-utils v0.37.2\n"


def test_build_compiles_into_the_cache_and_a_second_call_is_instant(tmp_path: Path, fake_go: Path) -> None:
    said: list[str] = []
    lay = KstatusBuilder(cache=tmp_path / "c", say=said.append).build()
    assert lay.kstatus == tmp_path / "c" / "kstatus" / CLI_UTILS_VERSION / "bin" / "kstatus"
    assert lay.complete(source_digest()) and find_kstatus(cache=tmp_path / "c") == lay.kstatus
    assert not (lay.root / "bin.partial").exists()
    assert (lay.src / "main.go").read_text() == SOURCE.read_text()
    assert f"require sigs.k8s.io/cli-utils {CLI_UTILS_VERSION}" in (lay.src / "go.mod").read_text()
    calls = _calls(fake_go)
    assert [c.split()[:2] for c in calls] == [["env", "GOVERSION"], ["mod", "tidy"], ["build", "-trimpath"]]
    assert f"PWD={lay.src} CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false" in calls[2]
    assert any("built in" in m for m in said)

    said.clear()
    again = KstatusBuilder(cache=tmp_path / "c", say=said.append).build()
    assert again.kstatus == lay.kstatus
    assert len(_calls(fake_go)) == 3  # no go call at all
    assert said == [f"kstatus (sigs.k8s.io/cli-utils {CLI_UTILS_VERSION}) already built: {lay.kstatus}"]

    # compute() talks to the binary over stdin/stdout, one result per line.
    [res] = compute({"kind": "Run"}, binary=lay.kstatus)
    assert (res.kind, res.namespace, res.name, res.status, res.message) == ("Run", "n", "r", "Current", "ok")


def test_a_cached_kstatus_needs_no_go_at_all(tmp_path: Path, fake_go: Path) -> None:
    KstatusBuilder(cache=tmp_path, say=lambda _: None).build()
    n = len(_calls(fake_go))
    assert KstatusBuilder(cache=tmp_path, say=lambda _: None, go="").build().complete()
    assert len(_calls(fake_go)) == n


def test_force_or_a_changed_source_rebuilds(tmp_path: Path, fake_go: Path) -> None:
    KstatusBuilder(cache=tmp_path, say=lambda _: None).build()
    KstatusBuilder(cache=tmp_path, say=lambda _: None).build(force=True)
    assert len(_calls(fake_go)) == 6
    edited = tmp_path / "main.go"
    edited.write_text(SOURCE.read_text() + "\n// edited\n")
    lay = KstatusBuilder(cache=tmp_path, say=lambda _: None, source=edited).build()
    assert len(_calls(fake_go)) == 9
    assert lay.complete(source_digest(edited)) and not lay.complete(source_digest())


def test_not_built_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BuildError, match=r"kstatus \(sigs\.k8s\.io/cli-utils v0\.37\.2\) is not built yet"):
        find_kstatus(cache=tmp_path)
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path))
    with pytest.raises(BuildError, match=f"looked for {tmp_path}/kstatus/v0.37.2/bin/kstatus"):
        compute({"kind": "Run"})


def test_no_go_on_path_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    with pytest.raises(BuildError, match=r"no Go toolchain on PATH.*cli-utils v0\.37\.2.*Go 1\.22 or newer"):
        KstatusBuilder(cache=tmp_path / "c", say=lambda _: None).build()
    assert not kstatus_layout(cache=tmp_path / "c").complete()


def test_an_old_go_is_a_clear_error(tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", "go1.21.13")
    with pytest.raises(BuildError, match=r"reports 'go1\.21\.13'; kstatus .* needs Go 1\.22 or newer"):
        KstatusBuilder(cache=tmp_path / "c", say=lambda _: None).build()


@pytest.mark.parametrize(
    ("step", "what", "detail"),
    [("tidy", "go mod tidy", "403 Forbidden"), ("build", "go build kstatus", "undefined: somethingMissing")],
)
def test_a_failed_step_shows_the_last_lines_of_its_log(
    tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch, step: str, what: str, detail: str
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", step)
    b = KstatusBuilder(cache=tmp_path / "c", say=lambda _: None)
    with pytest.raises(BuildError) as err:
        b.build()
    msg = str(err.value)
    assert f"{what} failed (exit 1)" in msg and detail in msg and str(b.layout.log) in msg
    assert not b.layout.complete()
    with pytest.raises(BuildError, match="not built yet"):
        find_kstatus(cache=tmp_path / "c")


def test_a_binary_of_the_wrong_version_is_refused(
    tmp_path: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KSTATUS_VERSION", "v0.30.0")
    with pytest.raises(BuildError, match=r"reports 'v0\.30\.0' \(exit 0\), not sigs\.k8s\.io/cli-utils v0\.37\.2"):
        KstatusBuilder(cache=tmp_path / "c", say=lambda _: None).build()
    assert not kstatus_layout(cache=tmp_path / "c").complete()
