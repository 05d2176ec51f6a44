"""`cairn dev up/down/status/env` refuse bad situations with clear errors and touch nothing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from cairn_dev.builds import k8s
from cairn_dev.cluster import Cluster, UpOptions
from cairn_dev.control_plane import kubeconfig_yaml
from cairn_dev.errors import DevError
from cairn_dev.procs import ProcRecord
from cairn_dev.state import State


@pytest.fixture
def fake_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache that looks built, so `up` gets as far as its own checks (nothing is started)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(cache))
    lay = k8s.layout()
    lay.bin.mkdir(parents=True)
    for name, _ in k8s.BINARIES:
        lay.binary(name).write_text("")
    lay.stamp.write_text("x")
    return cache


def test_up_refuses_a_foreign_non_empty_dir_and_leaves_it_alone(tmp_path: Path, fake_binaries: Path) -> None:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(DevError, match=r"is not empty \(notes.txt\) and holds no cairn dev cluster"):
        Cluster(d).up(say=lambda _: None)
    assert (d / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == ["notes.txt"]


def test_up_refuses_a_file_as_dir(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(DevError, match="is not a directory"):
        Cluster(f).up(say=lambda _: None)


def test_up_without_built_binaries_says_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(DevError, match="run `cairn dev build` first"):
        Cluster(tmp_path / "c").up(say=lambda _: None)


def test_up_refuses_a_port_in_use(tmp_path: Path, fake_binaries: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DevError, match=rf"port {port} \(--apiserver-port\) is already in use"):
            Cluster(tmp_path / "c").up(UpOptions(apiserver_port=port), say=lambda _: None)


def _stale(d: Path) -> None:
    d.mkdir(parents=True)
    state = State(
        k8s_version="v1.34.4",
        phase="up",
        procs={"etcd": ProcRecord("etcd", 999999, 1, ["etcd"], str(d / "logs/etcd.log"))},
    )
    (d / "state.json").write_text(json.dumps(state.to_json()))


def test_up_on_a_stale_dir_says_to_run_down(tmp_path: Path, fake_binaries: Path) -> None:
    _stale(tmp_path / "c")
    with pytest.raises(DevError, match=r"stale cluster \(its processes etcd are gone.*cairn dev down --dir"):
        Cluster(tmp_path / "c").up(say=lambda _: None)


def test_status_and_env_of_a_stale_or_missing_cluster(tmp_path: Path) -> None:
    text, healthy = Cluster(tmp_path / "none").status()
    assert not healthy and "no cairn dev cluster" in text
    with pytest.raises(DevError, match="no cluster is up"):
        Cluster(tmp_path / "none").env_text()
    _stale(tmp_path / "c")
    text, healthy = Cluster(tmp_path / "c").status()
    assert not healthy and "etcd                DOWN  pid 999999" in text


def test_down_cleans_a_stale_dir_and_keeps_foreign_files(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _stale(d)
    (d / "etcd").mkdir()
    (d / "mine.txt").write_text("keep")
    Cluster(d).down(say=lambda _: None)
    assert not (d / "state.json").exists() and not (d / "etcd").exists()
    assert (d / "mine.txt").read_text() == "keep"


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "state.json").write_text("{not json")
    with pytest.raises(DevError, match=r"state\.json is unreadable"):
        Cluster(d).status()


def test_kubeconfig_embeds_credentials(tmp_path: Path) -> None:
    for n in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / n).write_text(n)
    doc = yaml.safe_load(
        kubeconfig_yaml("https://127.0.0.1:6443", tmp_path / "ca.crt", tmp_path / "c.crt", tmp_path / "c.key", "me")
    )
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert doc["users"][0]["user"]["client-key-data"] == "Yy5rZXk="
    assert doc["current-context"] == "cairn-dev"
