"""Where `cairn dev` keeps its build cache and, by default, its local cluster."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Build outputs that can be thrown away: $CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn, else ~/.cache/cairn."""
    if env := os.environ.get("CAIRN_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn"


def default_cluster_dir() -> Path:
    """Where `cairn dev up` puts its cluster when no --dir is given: $CAIRN_DEV_DIR, else a state dir."""
    if env := os.environ.get("CAIRN_DEV_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cairn" / "dev"
