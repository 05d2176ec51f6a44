"""The local cluster builder (cairn-dev, devtools/) ships neither in the runtime wheel nor in the images, and
`cairn dev` without it says how to install it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from cairn import cli

ROOT = Path(__file__).resolve().parents[2]


def source_tree(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored), copied: what `pip wheel .` would see."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("tests/", "bench/", "docs/", "charts/", "deploy/", "crds/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_the_runtime_wheel_holds_no_cluster_builder(tmp_path: Path) -> None:
    src = source_tree(tmp_path / "src")
    out = tmp_path / "wheel"
    pip = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--quiet", "--wheel-dir", str(out)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    [wheel] = out.glob("cairn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"cairn/cli.py", "cairn/step.py", "cairn_operator/__main__.py"} <= set(names)  # it is the runtime's
    shipped = [n for n in names if n.startswith(("cairn_dev", "cairn/dev/")) or n.endswith((".go", "pause.c"))]
    assert shipped == []


def test_the_runtime_package_config_names_no_builder() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # `include = ["cairn*", ...]` would match cairn_dev: only the roots searched keep it out
    assert set(conf["packages"]["find"]["where"]) == {"runtime", "operator"}
    assert not [k for k in conf.get("package-data", {}) if k.startswith(("cairn_dev", "cairn.dev"))]
    assert not (ROOT / "runtime" / "cairn" / "dev").exists()


def test_the_images_copy_no_cluster_builder() -> None:
    copies = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")]
    assert copies and not [line for line in copies if "devtools" in line or line.split()[1] == "."]
    assert "devtools" in (ROOT / ".dockerignore").read_text().split()


def test_cairn_dev_without_the_builder_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "cairn_dev.cli", None)  # import cairn_dev.cli now fails as if absent
    assert cli.main(["dev", "up", "--dir", "/nowhere"]) == 2
    err = capsys.readouterr().err
    assert "cairn-dev" in err and "pip install -e ./devtools" in err and "make install" in err
    assert cli.main(["dev"]) == 2  # any `cairn dev ...` says it


def test_cairn_dev_with_the_builder_has_its_commands() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["dev", "env", "--path", "--dir", "/x"])
    assert args.path and args.dir == Path("/x") and args.func.__module__ == "cairn_dev.cli"
