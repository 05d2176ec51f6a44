"""Cairn's container images, built without a Docker engine (`cairn dev image build`).

The builder is buildah from Debian's archive (installed through :mod:`cairn_dev.debs`), daemonless,
with its image storage in the cairn cache (``<cache>/containers/<driver>``) so layers are reused
across runs. Builds run ``buildah build --layers --isolation chroot``: RUN steps need no OCI runtime
and share the host's network, so pip reaches PyPI; the host's CA bundle is bind-mounted read-only
over the image's (a TLS-intercepting proxy's CA then works in RUN steps without being baked in).

Four images, in build order:

* :data:`BASE_IMAGE` -- Debian bookworm ``minbase`` with python3 made by debootstrap from the host's
  apt mirror, packed ``FROM scratch`` + ``ADD rootfs.tar /``; made only when it is not in the storage.
* :data:`PAUSE_IMAGE` -- the kubelet's pod sandbox: ``pause.c`` compiled ``gcc -Os -static``.
* :data:`OPERATOR_IMAGE` and :data:`STEP_IMAGE` -- the two targets of the project's ``Dockerfile``
  (``--build-arg BASE=`` the base above), the same file ``docker build`` uses elsewhere.

:func:`export` writes a ``docker-archive`` tar whose RepoTag is the full ``localhost/...:tag`` name
(what ``ctr -n k8s.io images import`` and ``kind load image-archive`` read);
:func:`import_into_containerd` imports images into a running containerd.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cairn import __version__
from cairn_dev import debs, paths
from cairn_dev.errors import DevError

#: The images' version: the package's (pyproject.toml's ``version`` is the same; a unit test checks).
VERSION = __version__
#: Every name carries the ``localhost/`` prefix, so docker/kind and containerd agree on it.
BASE_IMAGE = "localhost/cairn-base:bookworm"
PAUSE_IMAGE = "localhost/cairn-pause:3.10"
OPERATOR_IMAGE = f"localhost/cairn-operator:{VERSION}"
STEP_IMAGE = f"localhost/cairn-step:{VERSION}"
#: Dockerfile targets and the images they become.
TARGETS: tuple[tuple[str, str], ...] = (("operator", OPERATOR_IMAGE), ("step", STEP_IMAGE))
#: What a node needs: the sandbox image and the two Cairn images.
NODE_IMAGES = (PAUSE_IMAGE, OPERATOR_IMAGE, STEP_IMAGE)

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Debian packages of the base, on top of debootstrap's ``minbase`` (netbase: /etc/services, /etc/protocols).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase")
#: The host's CA bundle, mounted read-only over the same path in RUN steps (Debian's pip uses it).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Storage drivers, in order of preference: overlay when the kernel and filesystem allow it, else vfs.
DRIVERS = ("overlay", "vfs")

BASE_CONTAINERFILE = f"""\
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
LABEL org.opencontainers.image.title="cairn-base" \\
      org.opencontainers.image.description="Debian {SUITE} minbase with {", ".join(BASE_PACKAGES)} (debootstrap)"
CMD ["/bin/bash"]
"""

PAUSE_CONTAINERFILE = """\
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
"""

#: Removed from the debootstrapped tree: apt's lists and caches, manuals, translations, docs (but not
#: the copyright files), logs.
_CLEAN_GLOBS = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/debconf/*-old",
    "var/log/*.log",
    "var/log/apt/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/doc/*/*",
)

Say = Callable[[str], None]


class ImageError(DevError):
    """An image could not be built, found or exported; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------- pure parts


def requirements(pyproject: Mapping[str, Any] | Path, group: str | Iterable[str]) -> list[str]:
    """The requirement lines of one image layer, from pyproject.toml alone (no package build).

    ``group`` ``"build"`` is ``[build-system].requires``; otherwise it names extras (``"operator,s3"``
    or a list): ``[project].dependencies`` plus each extra's list, first occurrence kept. The
    Dockerfile repeats this as a one-line python3 command (it runs before cairn is installed).
    """
    data = tomllib.loads(pyproject.read_text()) if isinstance(pyproject, Path) else pyproject
    if group == "build":
        reqs = list(data["build-system"]["requires"])
    else:
        project = data["project"]
        optional = project.get("optional-dependencies", {})
        extras = [e for e in (group.split(",") if isinstance(group, str) else group) if e]
        unknown = [e for e in extras if e not in optional]
        if unknown:
            raise ImageError(f"pyproject.toml has no extra {', '.join(unknown)} (it has {', '.join(optional)})")
        reqs = list(project.get("dependencies", [])) + [r for e in extras for r in optional[e]]
    return list(dict.fromkeys(reqs))


def parse_apt_sources(text: str, deb822: bool) -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of each enabled ``deb`` source in one sources file (one-line or deb822 format)."""
    out: list[tuple[str, list[str]]] = []
    if not deb822:
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            words = re.sub(r"\[[^\]]*\]", " ", line).split()  # drop [arch=... signed-by=...]
            if len(words) >= 3 and words[0] == "deb":
                out.append((words[1], [words[2]]))
        return out
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, _, value = raw.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        out.extend((uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split())
    return out


def debian_mirror(etc_apt: Path = Path("/etc/apt"), suite: str = SUITE) -> str:
    """The host's Debian mirror for `suite` (sources.list, sources.list.d/*.list and *.sources), else deb.debian.org."""
    files = [etc_apt / "sources.list"]
    listdir = etc_apt / "sources.list.d"
    if listdir.is_dir():
        files += sorted(p for p in listdir.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for uri, suites in parse_apt_sources(text, deb822=f.suffix == ".sources"):
            if suite in suites and uri.startswith(("http://", "https://", "file:")):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def debootstrap_argv(
    target: Path,
    mirror: str,
    debootstrap: str = "debootstrap",
    packages: Sequence[str] = BASE_PACKAGES,
    debs: Path | None = None,
) -> list[str]:
    """debootstrap's minbase of SUITE plus `packages`; `debs` keeps the downloaded packages for the next time."""
    argv = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}"]
    if debs is not None:
        argv.append(f"--cache-dir={debs}")
    return [*argv, SUITE, str(target), mirror]


def gcc_argv(source: Path, output: Path, gcc: str = "gcc") -> list[str]:
    return [gcc, "-Os", "-static", "-s", "-Wall", "-o", str(output), str(source)]


@dataclass(frozen=True)
class Storage:
    """buildah's image storage under the cairn cache: one directory per storage driver."""

    root: Path
    driver: str

    def global_args(self) -> list[str]:
        """buildah's global options that select this storage (they go before the subcommand)."""
        return [
            "--root",
            str(self.root / self.driver),
            "--runroot",
            str(self.root / f"run-{self.driver}"),
            "--storage-driver",
            self.driver,
        ]


def build_argv(
    buildah: str,
    storage: Storage,
    context: Path,
    tag: str,
    *,
    target: str | None = None,
    base: str | None = None,
    no_cache: bool = False,
    ca_bundle: Path | None = None,
    containerfile: Path | None = None,
) -> list[str]:
    """``buildah build`` with cached layers and chroot isolation (no OCI runtime, host network)."""
    argv = [buildah, *storage.global_args(), "build", "--layers", "--isolation", "chroot", "--pull=missing"]
    argv.append("--force-rm")  # a failed build leaves no working container (and its mount) behind
    if no_cache:
        argv.append("--no-cache")
    if ca_bundle is not None:
        argv += ["--volume", f"{ca_bundle}:{HOST_CA_BUNDLE}:ro"]
    if base is not None:
        argv += ["--build-arg", f"BASE={base}"]
    if target is not None:
        argv += ["--target", target]
    if containerfile is not None:
        argv += ["--file", str(containerfile)]
    return [*argv, "--tag", tag, str(context)]


def clean_rootfs(rootfs: Path) -> None:
    """Remove what an image does not need from a debootstrapped tree (see _CLEAN_GLOBS)."""
    for pattern in _CLEAN_GLOBS:
        for p in rootfs.glob(pattern):
            if p.name == "copyright" and p.parent.parent == rootfs / "usr/share/doc":
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def find_context(start: Path | None = None) -> Path:
    """The source tree with the Dockerfile: the checkout this package runs from, else the working directory."""
    candidates = [start] if start is not None else [Path(__file__).resolve().parents[3], Path.cwd()]
    for c in candidates:
        if (c / "Dockerfile").is_file() and (c / "pyproject.toml").is_file() and (c / "runtime" / "cairn").is_dir():
            return c
    where = " or ".join(str(c) for c in candidates)
    raise ImageError(
        f"no Cairn source tree (Dockerfile, pyproject.toml, runtime/) at {where}: the images are built from a "
        "checkout; run from its top directory or install it editable (pip install -e .)"
    )


def archive_name(image: str) -> str:
    """A file name for an image's archive: ``localhost/cairn-step:0.1.0`` -> ``cairn-step_0.1.0.tar``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", image.removeprefix("localhost/")) + ".tar"


# ---------------------------------------------------------------------------------------------- the builder


class ImageBuilder:
    """Builds, inspects and exports images in buildah storage under `cache` (default: the cairn cache)."""

    def __init__(
        self,
        cache: Path | None = None,
        context: Path | None = None,
        say: Say = print,
        buildah: str | None = None,
        debootstrap: str | None = None,
        gcc: str | None = None,
        driver: str | None = None,
        ca_bundle: Path | None = HOST_CA_BUNDLE,
    ) -> None:
        self.root = ((cache or paths.cache_dir()) / "containers").absolute()
        self._context = context
        self.say = say
        self._tools = {"buildah": buildah, "debootstrap": debootstrap, "gcc": gcc}
        self._driver = driver or os.environ.get("CAIRN_IMAGE_STORAGE_DRIVER") or None
        self._storage: Storage | None = None
        self.ca_bundle = ca_bundle if ca_bundle is not None and ca_bundle.is_file() else None
        #: The log of the latest build of each image (name -> path).
        self.logs: dict[str, Path] = {}

    # -- tools and storage

    def tool(self, name: str) -> str:
        """The path of `name` (buildah, debootstrap, gcc), installing the image-build packages when missing."""
        given = self._tools.get(name)
        if given:
            return given
        found = shutil.which(name)
        if found is None:
            try:
                debs.ensure(debs.IMAGE_BUILD, why=f"building container images ({name})", say=self.say)
            except DevError as exc:
                raise ImageError(
                    f"`{name}` is not installed and could not be installed: {exc}\n"
                    f"install it (Debian: apt-get install {' '.join(debs.IMAGE_BUILD)}) and run again"
                ) from exc
            found = shutil.which(name)
            if found is None:
                raise ImageError(f"`{name}` is still not on PATH after installing {' '.join(debs.IMAGE_BUILD)}")
        self._tools[name] = found
        return found

    @property
    def storage(self) -> Storage:
        """The storage, its driver chosen once: $CAIRN_IMAGE_STORAGE_DRIVER, else overlay if it works, else vfs."""
        if self._storage is None:
            buildah = self.tool("buildah")
            if self._driver is not None:
                if self._driver not in DRIVERS:
                    raise ImageError(f"unknown storage driver {self._driver!r}: use one of {', '.join(DRIVERS)}")
                self._storage = Storage(self.root, self._driver)
            else:
                errors = []
                for driver in DRIVERS:
                    candidate = Storage(self.root, driver)
                    res = subprocess.run(
                        [buildah, *candidate.global_args(), "info"], capture_output=True, text=True, check=False
                    )
                    if res.returncode == 0:
                        self._storage = candidate
                        break
                    errors.append(f"{driver}: {(res.stderr or res.stdout).strip()[-400:]}")
                else:
                    raise ImageError(
                        f"buildah cannot use its storage under {self.root} with any driver:\n" + "\n".join(errors)
                    )
        return self._storage

    def buildah(self, *args: str) -> list[str]:
        """The argv of one buildah command on this storage."""
        return [self.tool("buildah"), *self.storage.global_args(), *args]

    @property
    def context(self) -> Path:
        if self._context is None:
            self._context = find_context()
        return self._context

    def _run(self, argv: list[str], what: str, log: Path, fix: str) -> None:
        """Run one command with its output appended to `log`; on failure raise with the log's tail."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            raise ImageError(f"{what} failed (exit {code}); {fix}\nfull log: {log}\nlast lines:\n{tail(log)}")

    def log_path(self, image: str) -> Path:
        """Where the latest build of `image` writes its log."""
        return self.root / "logs" / (archive_name(image).removesuffix(".tar") + ".log")

    def _log(self, image: str) -> Path:
        path = self.log_path(image)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"cairn dev image build {image} at {time.ctime()}\n")
        self.logs[image] = path
        return path

    def _workdir(self, name: str) -> Path:
        work = self.root / "work" / f"{name}-{os.getpid()}"
        _remove_tree(work)
        work.mkdir(parents=True)
        return work

    # -- queries

    def exists(self, image: str) -> bool:
        res = subprocess.run(
            self.buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", image),
            capture_output=True,
            text=True,
            check=False,
        )
        return res.returncode == 0

    def inspect(self, image: str) -> dict[str, Any]:
        """`buildah inspect --type image` as a dict (OCIv1 config, Docker config, history, ...)."""
        self.require(image)
        res = subprocess.run(
            self.buildah("inspect", "--type", "image", image), capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise ImageError(f"buildah inspect {image} failed: {res.stderr.strip()}")
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    def image_id(self, image: str) -> str:
        return str(self.inspect(image)["FromImageID"])

    def layers(self, image: str) -> list[str]:
        """The image's layer diff IDs, bottom first."""
        return [str(d) for d in self.inspect(image)["OCIv1"]["rootfs"]["diff_ids"]]

    def names(self) -> list[str]:
        """The names of the tagged images in the storage."""
        res = subprocess.run(
            self.buildah("images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"),
            capture_output=True,
            text=True,
            check=False,
        )
        return sorted(n for n in res.stdout.split() if "<none>" not in n)

    def require(self, image: str) -> None:
        """Raise a clear error when `image` is not in the storage."""
        if not self.exists(image):
            have = ", ".join(self.names()) or "none"
            raise ImageError(
                f"image {image} is not in the image storage {self.root} (it has: {have}); "
                "build the images first: cairn dev image build"
            )

    def run(self, image: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run `argv` in a throwaway container of `image` (chroot isolation, the image's user and workdir)."""
        self.require(image)
        res = subprocess.run(self.buildah("from", "--pull=never", image), capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise ImageError(f"buildah from {image} failed: {res.stderr.strip()}")
        container = res.stdout.strip().splitlines()[-1]
        try:
            return subprocess.run(
                self.buildah("run", "--isolation", "chroot", container, "--", *argv),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            subprocess.run(self.buildah("rm", container), capture_output=True, check=False)

    # -- builds

    def build_base(self, force: bool = False) -> bool:
        """Make BASE_IMAGE with debootstrap unless it is in the storage; True when it was made."""
        if not force and self.exists(BASE_IMAGE):
            return False
        if os.geteuid() != 0:
            raise ImageError(
                f"making {BASE_IMAGE} runs debootstrap, which needs root; run as root or pass an existing "
                "base image (cairn dev image build --base IMAGE)"
            )
        debootstrap = self.tool("debootstrap")
        log = self._log(BASE_IMAGE)
        work = self._workdir("base")
        try:
            rootfs = work / "rootfs"
            mirror = debian_mirror()
            self.say(f"cairn dev image: debootstrap {SUITE} from {mirror} (log: {log})")
            debs_cache = self.root / "debs"
            debs_cache.mkdir(parents=True, exist_ok=True)
            self._run(
                debootstrap_argv(rootfs, mirror, debootstrap, debs=debs_cache),
                f"debootstrap {SUITE} from {mirror}",
                log,
                "check that the mirror is reachable (apt-get update works?) and there is disk space",
            )
            clean_rootfs(rootfs)
            ctx = work / "context"
            ctx.mkdir()
            self._run(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(ctx / "rootfs.tar"), "."],
                "packing the base rootfs",
                log,
                "check the disk space under the cache",
            )
            (ctx / "Containerfile").write_text(BASE_CONTAINERFILE)
            self._build(ctx, BASE_IMAGE, log, no_cache=True, ca_bundle=False)
        finally:
            _remove_tree(work)
        return True

    def build_pause(self, no_cache: bool = False) -> None:
        """PAUSE_IMAGE: pause.c compiled static, alone in a scratch image."""
        gcc = self.tool("gcc")
        log = self._log(PAUSE_IMAGE)
        work = self._workdir("pause")
        try:
            source = work / "pause.c"
            source.write_bytes(resources.files("cairn_dev.builds").joinpath("pause.c").read_bytes())
            self._run(
                gcc_argv(source, work / "pause", gcc),
                "compiling pause.c",
                log,
                "a static build needs gcc and libc6-dev (apt-get install gcc libc6-dev)",
            )
            source.unlink()
            (work / "Containerfile").write_text(PAUSE_CONTAINERFILE)
            self._build(work, PAUSE_IMAGE, log, no_cache=no_cache, ca_bundle=False)
        finally:
            _remove_tree(work)

    def build_target(self, target: str, tag: str, base: str = BASE_IMAGE, no_cache: bool = False) -> None:
        """One target of the project's Dockerfile, FROM `base`."""
        log = self._log(tag)
        self._build(self.context, tag, log, target=target, base=base, no_cache=no_cache)

    def _build(
        self,
        context: Path,
        tag: str,
        log: Path,
        *,
        target: str | None = None,
        base: str | None = None,
        no_cache: bool = False,
        ca_bundle: bool = True,
    ) -> None:
        argv = build_argv(
            self.tool("buildah"),
            self.storage,
            context,
            tag,
            target=target,
            base=base,
            no_cache=no_cache,
            ca_bundle=self.ca_bundle if ca_bundle else None,
        )
        self._run(
            argv,
            f"building {tag}",
            log,
            "the last lines say which step; a failed `pip install` needs PyPI (or a proxy) reachable",
        )

    def build_all(self, base: str | None = None, no_cache: bool = False, rebuild_base: bool = False) -> list[str]:
        """Base (when missing and no `base` is given), pause, operator, step; returns the node's image names."""

        def timed(name: str, fn: Callable[[], object]) -> None:
            t0 = time.monotonic()
            self.say(f"cairn dev image: building {name} (log: {self.log_path(name)})")
            fn()
            self.say(f"cairn dev image: {name} built in {time.monotonic() - t0:.1f}s")

        self.tool("buildah")
        if base is None:
            base = BASE_IMAGE
            t0 = time.monotonic()
            if self.build_base(force=rebuild_base):
                self.say(f"cairn dev image: {BASE_IMAGE} made in {time.monotonic() - t0:.1f}s")
            else:
                self.say(f"cairn dev image: {BASE_IMAGE} is in the image storage (kept)")
        elif not self.exists(base):
            self.say(
                f"cairn dev image: {base} is not in the image storage; buildah will try to pull it "
                f"(without a registry, omit --base to make {BASE_IMAGE} with debootstrap)"
            )
        timed(PAUSE_IMAGE, functools.partial(self.build_pause, no_cache=no_cache))
        for target, name in TARGETS:
            timed(name, functools.partial(self.build_target, target, name, base, no_cache))
        return list(NODE_IMAGES)

    # -- export

    def export(self, image: str, path: Path) -> Path:
        """Write `image` as a docker-archive tar with its full name as RepoTag (replacing `path`)."""
        self.require(image)
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        res = subprocess.run(
            self.buildah("push", "--quiet", image, f"docker-archive:{partial}:{image}"),
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ImageError(f"exporting {image} to {path} failed: {(res.stderr or res.stdout).strip()[-2000:]}")
        partial.replace(path)
        return path

    def archives(self, names: Iterable[str] = NODE_IMAGES) -> list[Path]:
        """docker-archive tars of `names` under the cache, re-exported only when an image changed."""
        out: list[Path] = []
        for name in names:
            image_id = self.image_id(name)
            path = self.root / "archives" / archive_name(name)
            stamp = path.with_name(path.name + ".id")
            if not (path.is_file() and stamp.is_file() and stamp.read_text().strip() == image_id):
                t0 = time.monotonic()
                self.export(name, path)
                stamp.write_text(image_id + "\n")
                self.say(f"cairn dev image: exported {name} to {path} ({time.monotonic() - t0:.1f}s)")
            out.append(path)
        return out

    def import_into_containerd(self, names: Iterable[str], address: Path | str, ctr: str | None = None) -> None:
        """`ctr --address ADDRESS -n k8s.io images import` each image (exported first, cached)."""
        ctr_bin = ctr or shutil.which("ctr")
        if not ctr_bin:
            raise ImageError(
                "`ctr` is not installed: it comes with containerd (Debian: apt-get install containerd; "
                "the node's packages: cairn_dev.debs.ensure(cairn_dev.debs.NODE, why=...))"
            )
        if not Path(address).exists():
            raise ImageError(f"no containerd socket at {address}: start containerd first (e.g. cairn dev up)")
        for archive in self.archives(names):
            t0 = time.monotonic()
            argv = [ctr_bin, "--address", str(address), "-n", "k8s.io", "images", "import", str(archive)]
            res = subprocess.run(argv, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                why = "\n".join((res.stderr + res.stdout).strip().splitlines()[-15:])
                raise ImageError(f"`{' '.join(argv)}` failed (exit {res.returncode}):\n{why}")
            self.say(f"cairn dev image: imported {archive.name} into containerd ({time.monotonic() - t0:.1f}s)")


def _remove_tree(path: Path) -> None:
    """rmtree that first unmounts anything mounted below `path` (debootstrap mounts /proc and /sys)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        mounts = []
    for mnt in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the work directory, when nothing else builds in it


# ---------------------------------------------------------------------------------------------- module API


def build_all(
    base: str | None = None, no_cache: bool = False, say: Say = print, cache: Path | None = None
) -> list[str]:
    """Build base (when missing), pause, operator and step; print each image's time; return the node's images."""
    return ImageBuilder(cache=cache, say=say).build_all(base=base, no_cache=no_cache)


def export(name: str, path: Path, say: Say = print, cache: Path | None = None) -> Path:
    """Write image `name` to `path` as a docker-archive tar named ``localhost/...:tag``."""
    return ImageBuilder(cache=cache, say=say).export(name, path)


def node_archives(say: Say = print, cache: Path | None = None) -> list[Path]:
    """docker-archive tars of the node's images (pause, operator, step); a missing image is an error."""
    return ImageBuilder(cache=cache, say=say).archives(NODE_IMAGES)


def import_into_containerd(
    names: Iterable[str], address: Path | str, say: Say = print, cache: Path | None = None
) -> None:
    """Import images into the containerd at `address` (namespace k8s.io, the one the CRI uses)."""
    ImageBuilder(cache=cache, say=say).import_into_containerd(names, address)
