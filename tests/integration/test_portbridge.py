"""The relay that makes host-loopback services reachable inside the containerd node's namespace."""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn_dev import procs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data.upper())


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"cairn-pbtest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_host_loopback_port_answers_inside_the_namespace_and_not_beyond_it(netns: str, tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rec = procs.start(
        "portbridge",
        [sys.executable, "-m", "cairn_dev.portbridge", "--netns", f"/run/netns/{netns}", str(port)],
        tmp_path / "bridge.log",
    )
    try:
        client = (
            "import socket,sys,time\n"
            "for i in range(100):\n"
            "    try:\n"
            f"        s=socket.create_connection(('127.0.0.1',{port}),timeout=2); break\n"
            "    except OSError: time.sleep(0.05)\n"
            "s.sendall(b'x'*200000+b'hello'); s.shutdown(socket.SHUT_WR)\n"
            "got=b''\n"
            "while d:=s.recv(65536): got+=d\n"
            "sys.stdout.write(got[-5:].decode()+str(len(got)))\n"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", client], capture_output=True, text=True, timeout=30
        )
        assert out.stdout == "HELLO200005", (out.stdout, out.stderr, procs.tail(rec.log))
        # The relay listens in the namespace only: on the host the port is the server's own.
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"ok")
            assert s.recv(10) == b"OK"
    finally:
        procs.stop(rec, grace=5)
        server.shutdown()
        server.server_close()
