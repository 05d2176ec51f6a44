"""The env file of a `cairn dev` cluster (DIR/env, `cairn dev env`): sourced in a real shell it sets the
cluster's variables and puts the built kubectl and helm first on PATH; `up`'s usage names it where it is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cairn_dev import envfile
from cairn_dev.cluster import Cluster
from cairn_dev.procs import ProcRecord
from cairn_dev.state import State
from cairn_dev.versions import HELM_VERSION, K8S_VERSION


def tool(folder: Path, name: str, says: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\necho {says}\n")
    (folder / name).chmod(0o755)


def sourced(script: Path, command: str, path: str) -> str:
    """Run `command` in a fresh bash after `source script`, with PATH=`path`."""
    argv = ["bash", "--noprofile", "--norc", "-c", f'source "$1" && {command}', "bash", str(script)]
    return subprocess.run(argv, capture_output=True, text=True, check=True, env={"PATH": path}).stdout


def test_sourced_script_sets_the_variables_and_puts_the_built_tools_first_on_path(tmp_path: Path) -> None:
    system, k8s_bin, helm_bin = tmp_path / "usr-bin", tmp_path / "k8s bin", tmp_path / "helm"
    tool(system, "kubectl", "system-kubectl")
    tool(system, "helm", "system-helm")
    tool(k8s_bin, "kubectl", "built-kubectl")
    tool(helm_bin, "helm", "built-helm")
    script = tmp_path / "env"
    odd = "a b'c\"$HOME"  # quoted for the shell: kept as written
    script.write_text(envfile.script({"KUBECONFIG": "/x/kubeconfig", "ODD": odd}, (k8s_bin, helm_bin)))
    path = f"{system}:/usr/bin:/bin"
    out = sourced(script, 'kubectl; helm; printf "%s\\n" "$KUBECONFIG" "$ODD" "$PATH"', path)
    assert out.splitlines() == ["built-kubectl", "built-helm", "/x/kubeconfig", odd, f"{k8s_bin}:{helm_bin}:{path}"]


def test_without_tools_path_is_left_alone() -> None:
    assert envfile.script({"A": "1"}) == "export A=1\n"


@pytest.mark.parametrize(
    ("env_dir", "default_dir", "hint"),
    [
        ("/s/cairn/dev", "/s/cairn/dev", 'source "$(cairn dev env --path)"'),
        ("/tmp/my dev", "/s/cairn/dev", "source \"$(cairn dev env --path --dir '/tmp/my dev')\""),
    ],
)
def test_source_hint_names_the_dir_only_when_it_is_not_the_default(env_dir: str, default_dir: str, hint: str) -> None:
    assert envfile.source_hint(Path(env_dir) / "env", Path(default_dir) / "env") == hint


def up_cluster(root: Path) -> State:
    """A state.json as `up` leaves it (no process runs: only the env and usage are read)."""
    state = State(
        k8s_version=K8S_VERSION,
        phase="up",
        ports={"apiserver": 6443, "s3": 9000},
        s3={"access_key": "ak", "secret_key": "sk", "bucket": "cairn"},
        node={"kind": "local", "name": "cairn-local"},
        procs={"node": ProcRecord("node", 999999, 1, ["x"], "/x.log")},
    )
    root.mkdir(parents=True)
    (root / "state.json").write_text(json.dumps(state.to_json()))
    return state


def test_env_and_usage_follow_cairn_dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, root = tmp_path / "cache", tmp_path / "state" / "dev"
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(cache))
    monkeypatch.setenv("CAIRN_DEV_DIR", str(root))
    state = up_cluster(root)
    cluster = Cluster()
    assert cluster.env_file() == root / "env"
    usage = cluster.usage(state)
    assert f'  source {root / "env"}          # or: source "$(cairn dev env --path)"\n' in usage
    assert "~/.local/state" not in usage and "  kubectl get nodes\n" in usage
    text = cluster.env_text()
    assert f"export KUBECONFIG={root / 'kubeconfig'}\n" in text
    assert text.endswith(f'export PATH={cache}/k8s/{K8S_VERSION}/bin:{cache}/helm/{HELM_VERSION}/bin:"$PATH"\n')


def test_usage_of_a_cluster_elsewhere_says_its_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_DEV_DIR", str(tmp_path / "default"))
    state = up_cluster(tmp_path / "other")
    usage = Cluster(tmp_path / "other").usage(state)
    assert f'source "$(cairn dev env --path --dir {tmp_path / "other"})"' in usage
