"""The containerd node's cgroups: its root ``/cairn-<id>`` made in the v1 hierarchies the kubelet needs, and
found again for `down` in every hierarchy runc and the kubelet write to, the v2 (unified) one included.

On a hybrid host (v1 controllers under /sys/fs/cgroup/<controller>, cgroup2 at /sys/fs/cgroup/unified)
runc also makes each pod's and container's cgroup under the unified hierarchy; `down` removes those too.
Every function takes the cgroup file system's mount point, so tests run them over a temporary directory.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
#: The v1 hierarchies the kubelet and runc put pods in (cgroupfs driver); `up` makes the root in each.
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "systemd")
#: The v1 hierarchies the containerd node cannot run without.
REQUIRED = ("cpu", "cpuset", "memory", "pids")


def hierarchies(fs: Path = CGROUP_FS) -> list[Path]:
    """The root of every cgroup hierarchy mounted under `fs`: each v1 one and the v2 (unified) one, or `fs`
    itself when it is a v2 (unified) mount. A hierarchy root holds a ``cgroup.procs`` file."""
    if (fs / "cgroup.procs").exists():
        return [fs]
    roots: dict[Path, Path] = {}
    with contextlib.suppress(OSError):
        for d in sorted(fs.iterdir()):
            if d.is_dir() and (d / "cgroup.procs").exists():
                roots.setdefault(d.resolve(), d)  # cpu,cpuacct and its links cpu, cpuacct: one hierarchy
    return list(roots.values())


def missing_controllers(fs: Path = CGROUP_FS) -> list[str]:
    """The v1 hierarchies the containerd node needs that this machine does not mount."""
    return [c for c in REQUIRED if not (fs / c / "cgroup.procs").exists()]


def root_dirs(name: str, fs: Path = CGROUP_FS) -> list[Path]:
    """Where `up` makes the node's cgroup root `name`: in each v1 hierarchy of CONTROLLERS present."""
    return [fs / c / name for c in CONTROLLERS if (fs / c).is_dir()]


def node_dirs(name: str, fs: Path = CGROUP_FS) -> list[Path]:
    """The node's cgroup `name` in every hierarchy, v1 and v2: what `down` looks in and removes."""
    found = {d: None for d in root_dirs(name, fs)}
    found.update({h / name: None for h in hierarchies(fs)})
    return list(found)


def make_roots(name: str, fs: Path = CGROUP_FS) -> None:
    """The kubelet's cgroupRoot in every v1 hierarchy (it must exist before the kubelet starts); a new
    cpuset gets its parent's cpus and memory nodes (an empty one admits no process)."""
    for d in root_dirs(name, fs):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((d.parent / f).read_text())


def pids(name: str, fs: Path = CGROUP_FS) -> set[int]:
    """Every process in the node's cgroups, in any hierarchy."""
    found: set[int] = set()
    for d in node_dirs(name, fs):
        for procs_file in d.rglob("cgroup.procs") if d.is_dir() else ():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in procs_file.read_text().split())
    return found


def remove(name: str, fs: Path = CGROUP_FS) -> list[Path]:
    """Remove the node's cgroups in every hierarchy, deepest first, with rmdir only (a cgroup with a process
    in it is never forced). Returns the ones left because they are not empty themselves (their parents,
    left for them, are not listed)."""
    left: list[Path] = []
    for top in node_dirs(name, fs):
        if not top.is_dir() or top.is_symlink():
            continue
        tree = [top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())]
        for d in sorted(tree, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                if not any(kept.is_relative_to(d) for kept in left):
                    left.append(d)
    return left
