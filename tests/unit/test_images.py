"""The image builder's pure parts and its error messages (fake buildah, debootstrap and ctr; no build runs)."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cairn import __version__
from cairn.cli import main
from cairn_dev import debs
from cairn_dev.builds import images
from cairn_dev.builds.images import ImageBuilder, ImageError, Storage
from cairn_dev.errors import DevError

ROOT = Path(__file__).resolve().parents[2]

PYPROJECT = {
    "build-system": {"requires": ["setuptools>=68", "wheel"]},
    "project": {
        "dependencies": ["pyyaml>=6"],
        "optional-dependencies": {
            "s3": ["boto3>=1.34", "python-dateutil>=2.8,<3"],
            "operator": ["kopf>=1.37", "python-dateutil>=2.8,<3"],
        },
    },
}


# ------------------------------------------------------------------------------------ requirements


@pytest.mark.parametrize(
    ("group", "want"),
    [
        ("build", ["setuptools>=68", "wheel"]),
        ("s3", ["pyyaml>=6", "boto3>=1.34", "python-dateutil>=2.8,<3"]),
        ("operator,s3", ["pyyaml>=6", "kopf>=1.37", "python-dateutil>=2.8,<3", "boto3>=1.34"]),
        (["s3", "operator"], ["pyyaml>=6", "boto3>=1.34", "python-dateutil>=2.8,<3", "kopf>=1.37"]),
        ("", ["pyyaml>=6"]),
    ],
)
def test_requirements_from_pyproject_alone(group: str | list[str], want: list[str]) -> None:
    assert images.requirements(PYPROJECT, group) == want


def test_requirements_refuse_an_unknown_extra() -> None:
    with pytest.raises(ImageError, match=r"no extra gpu \(it has s3, operator\)"):
        images.requirements(PYPROJECT, "s3,gpu")


def _dockerfile_lines() -> list[str]:
    """The Dockerfile's logical lines (continuations joined, comments dropped)."""
    out: list[str] = []
    current = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.endswith("\\"):
            current += raw[:-1]
            continue
        out.append(current + raw)
        current = ""
    return [line for line in out if line.strip()]


def test_the_dockerfile_writes_the_same_requirements(tmp_path: Path) -> None:
    """The Dockerfile's python3 one-liner (it runs before cairn is installed) agrees with requirements()."""
    (run,) = [line for line in _dockerfile_lines() if line.startswith("RUN ") and "tomllib" in line]
    assert run.startswith("RUN cd /tmp/cairn && python3 -c ")
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    command = run.removeprefix("RUN cd /tmp/cairn && python3 ")
    subprocess.run(f"cd {tmp_path} && {sys.executable} {command}", shell=True, check=True)
    pyproject = ROOT / "pyproject.toml"
    for group, name in (("build", "build.txt"), ("operator,s3", "operator.txt"), ("s3", "step.txt")):
        assert (tmp_path / name).read_text().splitlines() == images.requirements(pyproject, group), name


def test_the_dockerfile_has_the_two_targets_step_last() -> None:
    lines = _dockerfile_lines()
    assert lines[0] == "ARG BASE=python:3.11-slim"
    froms = [line.split() for line in lines if line.startswith("FROM ")]
    assert froms[0] == ["FROM", "${BASE}", "AS", "python"]
    assert [f[-1] for f in froms][-2:] == ["operator", "step"]
    operator = lines[lines.index("FROM python AS operator") : lines.index("FROM python AS step")]
    step = lines[lines.index("FROM python AS step") :]
    assert "USER 65532" in operator and "USER 65532" in step
    assert 'ENTRYPOINT ["python", "-m", "cairn_operator"]' in operator
    assert not [line for line in step if line.startswith("ENTRYPOINT")]
    assert step[-1] == 'CMD ["python"]'
    assert any("operator.txt" in line for line in operator) and any("step.txt" in line for line in step)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "bench"} <= set(ignored)


def test_one_version_for_the_images_and_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert images.VERSION == __version__ == version
    names = {"operator": images.OPERATOR_IMAGE, "step": images.STEP_IMAGE}
    assert names == {"operator": f"localhost/cairn-operator:{version}", "step": f"localhost/cairn-step:{version}"}
    assert all(name.startswith("localhost/") for name in (images.BASE_IMAGE, *images.NODE_IMAGES))


def test_pause_source_is_package_data() -> None:
    from importlib import resources

    assert "SIGTERM" in resources.files("cairn_dev.builds").joinpath("pause.c").read_text()
    assert '"pause.c"' in (ROOT / "devtools" / "pyproject.toml").read_text()


# ------------------------------------------------------------------------------------ argv


def test_build_argv_puts_the_storage_first_and_caches_layers(tmp_path: Path) -> None:
    argv = images.build_argv(
        "buildah",
        Storage(tmp_path, "overlay"),
        Path("/src"),
        images.STEP_IMAGE,
        target="step",
        base=images.BASE_IMAGE,
        ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"),
    )
    assert argv[:7] == [
        "buildah",
        "--root",
        str(tmp_path / "overlay"),
        "--runroot",
        str(tmp_path / "run-overlay"),
        "--storage-driver",
        "overlay",
    ]
    rest = argv[7:]
    assert rest[:4] == ["build", "--layers", "--isolation", "chroot"] and "--force-rm" in rest
    assert "--no-cache" not in rest
    pairs = list(itertools.pairwise(rest))
    assert ("--build-arg", "BASE=localhost/cairn-base:bookworm") in pairs
    assert ("--target", "step") in pairs
    assert ("--volume", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro") in pairs
    assert rest[-3:] == ["--tag", images.STEP_IMAGE, "/src"]


def test_build_argv_no_cache_and_no_extras(tmp_path: Path) -> None:
    argv = images.build_argv("b", Storage(tmp_path, "vfs"), tmp_path, "localhost/x:1", no_cache=True)
    assert "--no-cache" in argv and "vfs" in argv
    assert not {"--target", "--build-arg", "--volume"} & set(argv)


def test_debootstrap_and_gcc_argv(tmp_path: Path) -> None:
    argv = images.debootstrap_argv(tmp_path / "rootfs", "http://m/debian", debs=tmp_path / "debs")
    assert argv == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3,python3-venv,ca-certificates,netbase",
        f"--cache-dir={tmp_path / 'debs'}",
        "bookworm",
        str(tmp_path / "rootfs"),
        "http://m/debian",
    ]
    assert images.gcc_argv(Path("p.c"), Path("p"))[:3] == ["gcc", "-Os", "-static"]


def test_archive_name() -> None:
    assert images.archive_name("localhost/cairn-step:0.1.0") == "cairn-step_0.1.0.tar"


# ------------------------------------------------------------------------------------ apt sources, rootfs

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_parse_apt_sources_both_formats() -> None:
    assert images.parse_apt_sources(DEB822, deb822=True) == [
        ("http://mirror.example/debian", ["bookworm", "bookworm-updates"]),
        ("http://mirror.example/debian-security", ["bookworm-security"]),
    ]
    one_line = "# c\ndeb-src http://x/debian bookworm main\ndeb [arch=amd64 signed-by=/k] http://y/debian/ bookworm\n"
    assert images.parse_apt_sources(one_line, deb822=False) == [("http://y/debian/", ["bookworm"])]
    disabled = "Enabled: no\nTypes: deb\nURIs: http://z/debian\nSuites: bookworm\n"
    assert images.parse_apt_sources(disabled, deb822=True) == []


def test_debian_mirror_reads_the_hosts_sources(tmp_path: Path) -> None:
    assert images.debian_mirror(tmp_path) == images.DEFAULT_MIRROR
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://no/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert images.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb http://first/debian/ bookworm main\n")
    assert images.debian_mirror(tmp_path) == "http://first/debian"


def test_clean_rootfs_keeps_copyright_files(tmp_path: Path) -> None:
    keep = ["usr/share/doc/python3/copyright", "usr/bin/python3"]
    drop = [
        "var/lib/apt/lists/deb.debian.org_Packages",
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/archives/x.deb",
        "usr/share/doc/python3/changelog.gz",
        "usr/share/doc/python3/examples/a.py",
        "usr/share/man/man1/python3.1.gz",
        "usr/share/locale/de/LC_MESSAGES/apt.mo",
    ]
    for rel in keep + drop:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    images.clean_rootfs(tmp_path)
    assert [rel for rel in keep if not (tmp_path / rel).exists()] == []
    assert [rel for rel in drop if (tmp_path / rel).exists()] == []
    assert (tmp_path / "var/lib/apt/lists").is_dir() and (tmp_path / "usr/share/man").is_dir()


# ------------------------------------------------------------------------------------ errors (fake tools)

FAKE_BUILDAH = r"""#!/bin/sh
echo "$*" >> "$FAKE_CALLS"
driver=""
while [ $# -gt 0 ]; do
  case "$1" in
    --storage-driver) driver=$2; shift 2;;
    --root|--runroot) shift 2;;
    *) break;;
  esac
done
cmd=$1; shift
case "$cmd" in
  info)
    if [ "$driver" = overlay ] && [ -n "$FAKE_NO_OVERLAY" ]; then
      echo 'overlay: "overlay" is not supported over extfs' >&2; exit 125
    fi
    echo '{}';;
  inspect) exit "${FAKE_INSPECT_RC:-125}";;
  images) printf '%s\n' $FAKE_IMAGES;;
  build)
    echo "STEP 1/7: FROM localhost/cairn-base:bookworm AS python"
    echo "STEP 5/7: RUN pip install -r /tmp/cairn/operator.txt"
    echo "ERROR: No matching distribution found for kopf>=1.37"
    exit 1;;
  *) echo "fake buildah: $cmd" >&2; exit 2;;
esac
"""


def _fake(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(script if script.startswith("#!") else "#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fake_buildah(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    monkeypatch.delenv("CAIRN_IMAGE_STORAGE_DRIVER", raising=False)
    return _fake(tmp_path, "buildah", FAKE_BUILDAH)


def _builder(tmp_path: Path, **kwargs: object) -> ImageBuilder:
    return ImageBuilder(cache=tmp_path / "cache", context=ROOT, say=lambda _: None, **kwargs)  # type: ignore[arg-type]


def test_missing_builder_that_cannot_be_installed_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    def refuse(packages: object, why: str, say: object = None) -> None:
        raise DevError(f"{why} needs the Debian packages buildah debootstrap; this is not a Debian system")

    monkeypatch.setattr(debs, "ensure", refuse)
    with pytest.raises(ImageError) as err:
        _builder(tmp_path).build_all()
    msg = str(err.value)
    assert "`buildah` is not installed and could not be installed" in msg
    assert "not a Debian system" in msg
    assert f"apt-get install {' '.join(debs.IMAGE_BUILD)}" in msg


def test_overlay_falls_back_to_vfs(tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _builder(tmp_path, buildah=fake_buildah).storage.driver == "overlay"
    monkeypatch.setenv("FAKE_NO_OVERLAY", "1")
    storage = _builder(tmp_path, buildah=fake_buildah).storage
    assert storage == Storage(tmp_path / "cache" / "containers", "vfs")
    monkeypatch.setenv("CAIRN_IMAGE_STORAGE_DRIVER", "zfs")
    with pytest.raises(ImageError, match="unknown storage driver 'zfs'"):
        _ = _builder(tmp_path, buildah=fake_buildah).storage


def test_failed_debootstrap_shows_its_log_tail(
    tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    debootstrap = _fake(
        tmp_path,
        "debootstrap",
        'echo "I: Retrieving InRelease"\necho "E: Couldn\'t download packages: python3-venv" >&2\nexit 1\n',
    )
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    b = _builder(tmp_path, buildah=fake_buildah, debootstrap=debootstrap)
    with pytest.raises(ImageError) as err:
        b.build_all()
    msg = str(err.value)
    assert "debootstrap bookworm from" in msg and "failed (exit 1)" in msg
    assert "E: Couldn't download packages: python3-venv" in msg
    assert str(b.log_path(images.BASE_IMAGE)) in msg
    assert not list((b.root / "work").glob("base-*")), "the partial rootfs is removed"


def test_base_needs_root(tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ImageError, match=r"debootstrap, which needs root.*--base IMAGE"):
        _builder(tmp_path, buildah=fake_buildah).build_base()


def test_failed_build_step_shows_its_log_tail(
    tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_INSPECT_RC", "0")  # the base is there
    b = _builder(tmp_path, buildah=fake_buildah, ca_bundle=None)
    with pytest.raises(ImageError) as err:
        b.build_target("operator", images.OPERATOR_IMAGE)
    msg = str(err.value)
    assert f"building {images.OPERATOR_IMAGE} failed (exit 1)" in msg
    assert "STEP 5/7: RUN pip install" in msg and "No matching distribution found for kopf" in msg
    assert str(b.log_path(images.OPERATOR_IMAGE)) in msg
    calls = (tmp_path / "calls").read_text()
    assert "build --layers --isolation chroot" in calls and "--target operator" in calls


def test_exporting_a_missing_image_says_to_build(
    tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IMAGES", "localhost/cairn-base:bookworm <none>:<none>")
    with pytest.raises(ImageError) as err:
        _builder(tmp_path, buildah=fake_buildah).export(images.STEP_IMAGE, tmp_path / "step.tar")
    msg = str(err.value)
    assert f"image {images.STEP_IMAGE} is not in the image storage" in msg
    assert "(it has: localhost/cairn-base:bookworm)" in msg and "cairn dev image build" in msg
    assert not (tmp_path / "step.tar").exists()


def test_cli_export_error_exits_2(
    tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["dev", "image", "export", "localhost/nope:1", str(tmp_path / "x.tar")]) == 2
    assert "image localhost/nope:1 is not in the image storage" in capsys.readouterr().err


def test_import_into_containerd_errors(tmp_path: Path, fake_buildah: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _builder(tmp_path, buildah=fake_buildah)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ImageError, match=r"`ctr` is not installed: it comes with containerd"):
        b.import_into_containerd([images.PAUSE_IMAGE], tmp_path / "containerd.sock")
    ctr = _fake(tmp_path, "ctr", 'echo "ctr: content digest sha256:abc: not found" >&2\nexit 1\n')
    with pytest.raises(ImageError, match=r"no containerd socket at .*containerd\.sock: start containerd"):
        b.import_into_containerd([images.PAUSE_IMAGE], tmp_path / "containerd.sock", ctr=ctr)
    (tmp_path / "containerd.sock").touch()
    monkeypatch.setattr(ImageBuilder, "archives", lambda self, names: [tmp_path / "pause.tar"])
    with pytest.raises(ImageError) as err:
        b.import_into_containerd([images.PAUSE_IMAGE], tmp_path / "containerd.sock", ctr=ctr)
    msg = str(err.value)
    assert f"-n k8s.io images import {tmp_path / 'pause.tar'}` failed (exit 1)" in msg
    assert "content digest sha256:abc: not found" in msg
