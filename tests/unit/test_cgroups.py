"""The containerd node's cgroups over a temporary directory standing in for /sys/fs/cgroup: which hierarchies
hold the node's cgroup (v1 and the v2 unified one), and `down`'s removal, deepest first, never forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn_dev import cgroups

NAME = "cairn-0123abcd"
V1 = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "systemd")


def hierarchy(root: Path) -> Path:
    """A hierarchy root as the kernel shows one: a directory with a cgroup.procs file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.procs").write_text("")
    return root


def hybrid(fs: Path, v1: tuple[str, ...] = V1) -> Path:
    """v1 controllers under fs/<controller>, cgroup2 at fs/unified (Debian's and this CI's layout)."""
    for c in v1:
        hierarchy(fs / c)
    hierarchy(fs / "unified")
    return fs


def unified_only(fs: Path) -> Path:
    """A cgroup v2 only host: fs itself is the unified hierarchy."""
    return hierarchy(fs)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (hybrid, [*(f"{c}/{NAME}" for c in V1), f"unified/{NAME}"]),
        (lambda fs: hybrid(fs, ("cpu", "memory")), [f"cpu/{NAME}", f"memory/{NAME}", f"unified/{NAME}"]),
        (unified_only, [NAME]),
        (lambda fs: fs, []),
    ],
    ids=["hybrid", "hybrid-two-controllers", "unified-only", "none"],
)
def test_node_dirs_are_in_every_hierarchy_v2_included(layout: object, expected: list[str], tmp_path: Path) -> None:
    fs = tmp_path / "cgroup"
    fs.mkdir()
    layout(fs)  # type: ignore[operator]
    assert sorted(str(d.relative_to(fs)) for d in cgroups.node_dirs(NAME, fs)) == sorted(expected)


def test_a_hierarchy_linked_under_two_names_is_one(tmp_path: Path) -> None:
    fs = tmp_path / "cgroup"
    hierarchy(fs / "cpu,cpuacct")
    (fs / "cpu").symlink_to("cpu,cpuacct")
    hierarchy(fs / "unified")
    assert [h.name for h in cgroups.hierarchies(fs)] == ["cpu", "unified"]


def test_up_makes_roots_only_in_v1_and_down_removes_v1_and_v2_trees_deepest_first(tmp_path: Path) -> None:
    fs = hybrid(tmp_path / "cgroup")
    (fs / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (fs / "cpuset" / "cpuset.mems").write_text("0\n")
    (fs / "cpuset" / NAME).mkdir()  # as the kernel shows a new cpuset: its control files, empty
    for f in ("cpuset.cpus", "cpuset.mems"):
        (fs / "cpuset" / NAME / f).write_text("")
    cgroups.make_roots(NAME, fs)
    assert all((fs / c / NAME).is_dir() for c in V1)
    assert (fs / "cpuset" / NAME / "cpuset.cpus").read_text() == "0-1\n"
    assert not (fs / "unified" / NAME).exists()  # runc makes the v2 side itself
    (fs / "cpuset" / NAME / "cpuset.cpus").unlink()
    (fs / "cpuset" / NAME / "cpuset.mems").unlink()
    # what runc and the kubelet make under the root, in v1 and v2
    for top in (fs / "memory" / NAME, fs / "unified" / NAME):
        (top / "kubepods" / "besteffort" / "pod1" / "ctr1").mkdir(parents=True)
        (top / "kubepods" / "burstable").mkdir(parents=True)

    assert cgroups.remove(NAME, fs) == []
    assert not any(fs.rglob(f"{NAME}*"))
    assert all((fs / c).is_dir() for c in (*V1, "unified"))  # the hierarchies themselves are kept


def test_a_cgroup_that_is_not_empty_is_left_and_reported_not_forced(tmp_path: Path) -> None:
    fs = hybrid(tmp_path / "cgroup")
    busy = fs / "unified" / NAME / "kubepods" / "pod1"
    busy.mkdir(parents=True)
    (busy / "cgroup.procs").write_text("4242\n")  # a process still in it: rmdir must fail
    (fs / "unified" / NAME / "kubepods" / "pod2").mkdir()
    (fs / "memory" / NAME / "kubepods").mkdir(parents=True)

    assert cgroups.pids(NAME, fs) == {4242}
    assert cgroups.remove(NAME, fs) == [busy]  # its parents stay for it and are not listed
    assert busy.is_dir() and not (fs / "unified" / NAME / "kubepods" / "pod2").exists()
    assert not (fs / "memory" / NAME).exists()


def test_nothing_to_remove_is_fine(tmp_path: Path) -> None:
    fs = hybrid(tmp_path / "cgroup")
    assert cgroups.remove(NAME, fs) == []
    assert cgroups.pids(NAME, fs) == set()


def test_missing_controllers_names_what_the_containerd_node_needs(tmp_path: Path) -> None:
    fs = tmp_path / "cgroup"
    unified_only(fs)
    assert cgroups.missing_controllers(fs) == ["cpu", "cpuset", "memory", "pids"]
    assert cgroups.missing_controllers(hybrid(tmp_path / "h")) == []
