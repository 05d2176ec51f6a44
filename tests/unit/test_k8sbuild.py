"""Generating the helper Go module, and the build's error messages (no Go build runs here)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cairn_dev.builds import k8s
from cairn_dev.builds.k8s import Builder, BuildError, parse_go_version, render_gomod, replace_lines
from cairn_dev.versions import K8S_VERSION, staging_version

GOMOD = """module k8s.io/kubernetes

go 1.24.0

require (
	k8s.io/api v0.0.0
	github.com/foo/bar v1.2.3
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go // a comment
	github.com/foo/bar => github.com/foo/bar v1.2.4
	k8s.io/kubectl => ./staging/src/k8s.io/kubectl
)

replace k8s.io/kms => ./staging/src/k8s.io/kms
"""


def test_replace_lines_pin_each_staging_module_to_the_published_release() -> None:
    assert replace_lines(GOMOD, "v0.34.4") == [
        "k8s.io/api => k8s.io/api v0.34.4",
        "k8s.io/client-go => k8s.io/client-go v0.34.4",
        "k8s.io/kms => k8s.io/kms v0.34.4",
        "k8s.io/kubectl => k8s.io/kubectl v0.34.4",
    ]


def test_replace_lines_refuse_a_gomod_without_staging() -> None:
    with pytest.raises(BuildError, match=r"no `replace k8s\.io/X"):
        replace_lines("module x\n\nrequire k8s.io/api v0.34.4\n", "v0.34.4")


def test_render_gomod_requires_the_release_and_lists_the_pins() -> None:
    text = render_gomod("v1.34.4", ["k8s.io/api => k8s.io/api v0.34.4"])
    assert "require k8s.io/kubernetes v1.34.4\n" in text
    assert "replace (\n\tk8s.io/api => k8s.io/api v0.34.4\n)\n" in text
    assert text.startswith("module cairn.dev/k8sbuild\n")


@pytest.mark.parametrize(
    ("release", "staging"), [("v1.34.4", "v0.34.4"), ("1.35.0", "v0.35.0"), ("v1.34.12", "v0.34.12")]
)
def test_staging_version(release: str, staging: str) -> None:
    assert staging_version(release) == staging


@pytest.mark.parametrize("bad", ["v2.0.1", "v1.34", "latest", "v1.34.4-rc.1"])
def test_staging_version_rejects_non_releases(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes release"):
        staging_version(bad)


def test_the_pinned_version_is_a_v1_34_patch_release() -> None:
    assert K8S_VERSION.startswith("v1.34.")
    assert staging_version(K8S_VERSION) == "v0.34." + K8S_VERSION.rsplit(".", 1)[1]


@pytest.mark.parametrize(("text", "want"), [("go1.26.8\n", (1, 26)), ("go1.24.0", (1, 24)), ("devel", None)])
def test_parse_go_version(text: str, want: tuple[int, int] | None) -> None:
    assert parse_go_version(text) == want


def test_ldflags_stamp_the_release() -> None:
    flags = k8s.ldflags("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags


def test_missing_go_toolchain_is_a_clear_error(tmp_path: Path) -> None:
    b = Builder(cache=tmp_path, say=lambda _: None, go="")
    with pytest.raises(BuildError, match="no Go toolchain on PATH"):
        b.build()


def _fake_go(tmp_path: Path, script: str) -> str:
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return str(go)


def test_old_go_toolchain_is_a_clear_error(tmp_path: Path) -> None:
    go = _fake_go(tmp_path, "echo go1.19.3\n")
    with pytest.raises(BuildError, match=r"needs Go 1\.24 or newer"):
        Builder(cache=tmp_path / "c", say=lambda _: None, go=go).build()


def test_failed_step_shows_the_last_lines_of_the_log(tmp_path: Path) -> None:
    go = _fake_go(
        tmp_path,
        'if [ "$1" = env ]; then echo go1.26.1; exit 0; fi\n'
        'echo "proxy says: 403 Forbidden for k8s.io/kubernetes" >&2\nexit 1\n',
    )
    b = Builder(cache=tmp_path / "c", say=lambda _: None, go=go)
    with pytest.raises(BuildError) as err:
        b.build()
    assert "exit 1" in str(err.value)
    assert "403 Forbidden for k8s.io/kubernetes" in str(err.value)
    assert str(b.layout.log) in str(err.value)
    assert not b.layout.complete()


def test_find_binaries_says_to_run_build(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="run `cairn dev build` first"):
        k8s.find_binaries(cache=tmp_path)


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cairn_dev import paths

    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path))
    assert k8s.layout().bin == tmp_path / "k8s" / K8S_VERSION / "bin"
    monkeypatch.delenv("CAIRN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.cache_dir() == tmp_path / "x" / "cairn"
    assert os.fspath(paths.cache_dir()).endswith("cairn")


def test_a_long_step_reports_that_it_still_runs(tmp_path: Path) -> None:
    go = _fake_go(
        tmp_path, 'if [ "$1" = env ]; then echo go1.26.1; exit 0; fi\nsleep 0.5\necho "slow failure" >&2\nexit 3\n'
    )
    said: list[str] = []
    b = Builder(cache=tmp_path / "c", say=said.append, go=go, tick=0.1)
    with pytest.raises(BuildError, match="slow failure"):
        b.build()
    assert any("still" in m or "..." in m for m in said[1:]), said
