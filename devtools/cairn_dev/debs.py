"""Debian packages that `cairn dev` needs for real containers, installed by the project itself.

The container tier (image builds, the containerd node) uses programs from Debian's archive: buildah,
debootstrap, containerd, runc, the CNI plugins, iptables. :func:`ensure` checks which are missing with
`dpkg-query` and installs only those (`apt-get update` first, once per process), as root. Anywhere
else it stops with a message that names the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable

from cairn_dev.errors import DevError

#: What builds images here without a Docker engine.
IMAGE_BUILD = ("buildah", "debootstrap", "uidmap", "gcc", "libc6-dev")
#: What runs a real node: the container runtime, the CNI plugins, and the tools the node setup uses.
NODE = ("containerd", "runc", "containernetworking-plugins", "iptables", "iproute2", "util-linux")
#: What the browser tests of `cairn ui` drive: Debian's headless Chromium and its WebDriver (nothing
#: downloads a browser at run time; Selenium is pointed at /usr/bin/chromedriver).
BROWSER = ("chromium", "chromium-driver", "fonts-dejavu-core")

_updated = False


def missing(packages: Iterable[str]) -> list[str]:
    """The packages of `packages` that dpkg does not report as installed."""
    out: list[str] = []
    for pkg in packages:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], capture_output=True, text=True, check=False
        )
        if res.returncode != 0 or not res.stdout.startswith("ii"):
            out.append(pkg)
    return out


def ensure(packages: Iterable[str], why: str, say: Callable[[str], None] = print) -> None:
    """Install the missing ones of `packages` with apt-get, or raise a DevError that says how."""
    global _updated
    wanted = list(packages)
    if not shutil.which("dpkg-query"):
        raise DevError(f"{why} needs the Debian packages {' '.join(wanted)}; this is not a Debian system")
    todo = missing(wanted)
    if not todo:
        return
    command = f"apt-get update && apt-get install -y --no-install-recommends {' '.join(todo)}"
    if os.geteuid() != 0:
        raise DevError(f"{why} needs the Debian packages {' '.join(todo)}; install them as root: {command}")
    say(f"cairn dev: installing {' '.join(todo)} from Debian ({why})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt-get (or a parallel `cairn dev`) may hold the lock
    steps = [["apt-get", *wait, "install", "-y", "--no-install-recommends", *todo]]
    if not _updated:
        steps.insert(0, ["apt-get", *wait, "update"])
    for argv in steps:
        res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
            raise DevError(f"`{' '.join(argv)}` failed (exit {res.returncode}); run `{command}` by hand\n{tail}")
        if "update" in argv:
            _updated = True
