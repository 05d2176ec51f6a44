"""`python -m cairn_dev.portbridge`: make host-loopback services reachable inside a network namespace.

The control plane of `cairn dev` listens on 127.0.0.1 of the host only. The containerd node lives in a
network namespace of its own (so its bridge, veths and iptables rules never touch the host's network),
and from there 127.0.0.1 is the namespace's own loopback. This small TCP relay opens its listening
sockets *inside* the node's namespace (a socket keeps the namespace it was made in) and connects *out*
from the host's namespace, so the kubelet, the operator's pod and step pods reach the API server and S3
at the node's address without either being exposed beyond the host's loopback.

    python -m cairn_dev.portbridge --netns /run/netns/cairn-ab12cd34 6443 9000

relays <netns>:6443 -> 127.0.0.1:6443 and <netns>:9000 -> 127.0.0.1:9000 (all addresses of the namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys

CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind `fd`."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in(netns: str, ports: list[int]) -> list[socket.socket]:
    """Listening sockets on all addresses of `netns` (a /run/netns path), made from the host's namespace."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    socks: list[socket.socket] = []
    try:
        setns(target)
        try:
            for port in ports:
                s = socket.create_server(("0.0.0.0", port), reuse_port=False, backlog=512)
                s.setblocking(False)
                socks.append(s)
        finally:
            setns(home)
    finally:
        os.close(home)
        os.close(target)
    return socks


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def _handler(port: int) -> object:
    async def handle(r1: asyncio.StreamReader, w1: asyncio.StreamWriter) -> None:
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            w1.close()
            return
        await asyncio.gather(_pipe(r1, w2), _pipe(r2, w1))
        for w in (w1, w2):
            w.close()

    return handle


async def serve(socks: list[socket.socket], ports: list[int]) -> None:
    servers = [await asyncio.start_server(_handler(p), sock=s) for s, p in zip(socks, ports, strict=True)]  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"portbridge: relaying ports {', '.join(map(str, ports))} into the namespace", flush=True)
    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cairn_dev.portbridge", description=__doc__)
    parser.add_argument("--netns", required=True, help="path of the network namespace (/run/netns/NAME)")
    parser.add_argument("ports", nargs="+", type=int, help="host loopback ports to relay")
    args = parser.parse_args(argv)
    try:
        socks = listen_in(args.netns, args.ports)
    except OSError as exc:
        print(f"portbridge: cannot listen in {args.netns}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(socks, args.ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
