"""Where an LLM server listens: every address its host names, all on one port.

``slurm.bind_host: "*"`` means "reachable however a worker addresses this node". Asking
asyncio for ``*`` with port 0 binds IPv4 and IPv6 on two *different* random ports, and
the server then advertised only one of them: workers dialling ``127.0.0.1`` (or the
node's IPv4 address) hit a closed port. So a port is picked once and every address
family is bound to it (:func:`listen_sockets`); a subprocess engine gets the ``--host``
that means "every family" to its own way of binding (:func:`asyncio_host`,
:func:`single_socket_host`), on a port free in every family (:func:`free_port`).
"""

from __future__ import annotations

import errno
import functools
import socket
from typing import Any

WILDCARDS = frozenset({"*", "0.0.0.0", "", "::"})
_UNAVAILABLE = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})


def is_wildcard(host: str | None) -> bool:
    return host is None or host in WILDCARDS


@functools.cache
def dual_stack() -> bool:
    """Does an IPv6 socket bound to ``::`` take IPv4 too (``net.ipv6.bindv6only=0``)?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            if sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
                return False
            sock.bind(("::", 0))
    except OSError:
        return False
    return True


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@functools.cache
def loopback_hosts() -> tuple[str, ...]:
    """``127.0.0.1``, and ``::1`` where the machine has IPv6 loopback (checks, tests)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return ("127.0.0.1",)
    return ("127.0.0.1", "::1")


def single_socket_host(host: str) -> str:
    """``--host`` for an engine that binds one socket itself (vLLM): ``::`` is every
    address where the kernel makes it dual-stack, else IPv4's wildcard."""
    if not is_wildcard(host):
        return host
    return "::" if dual_stack() else "0.0.0.0"


def asyncio_host(host: str) -> str:
    """``--host`` for an engine that hands it to ``loop.create_server`` (uvicorn's default
    path: llama.cpp). There ``::`` would be IPv6 only (asyncio sets ``IPV6_V6ONLY``), while
    ``""`` binds every family on the given port."""
    return "" if is_wildcard(host) else host


Address = tuple[socket.AddressFamily, tuple[Any, ...]]


def _addresses(host: str) -> list[Address]:
    """Each distinct (family, sockaddr) ``host`` resolves to; a wildcard is every family."""
    name = None if is_wildcard(host) else host
    infos = socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    out: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        entry: Address = (family, tuple(sockaddr))
        if family in (socket.AF_INET, socket.AF_INET6) and entry not in out:
            out.append(entry)
    return out


def _bind(family: socket.AddressFamily, sockaddr: tuple[Any, ...], port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # the IPv4 socket takes IPv4, on every kernel
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((sockaddr[0], port, *sockaddr[2:]))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_all(host: str, port: int) -> list[socket.socket]:
    """One socket per address, all on ``port`` (0: the first bind picks it). A family the
    machine lacks (no IPv6) is skipped; every other error closes what was bound."""
    socks: list[socket.socket] = []
    try:
        for family, sockaddr in _addresses(host):
            try:
                sock = _bind(family, sockaddr, port)
            except OSError as exc:
                if exc.errno in _UNAVAILABLE:
                    continue
                raise
            socks.append(sock)
            port = sock.getsockname()[1]
    except OSError:
        for sock in socks:
            sock.close()
        raise
    if not socks:
        raise OSError(errno.EADDRNOTAVAIL, f"no address of {host!r} can be listened on")
    return socks


def listen_sockets(host: str, port: int = 0, attempts: int = 8) -> list[socket.socket]:
    """Bound (not yet listening) sockets on every address of ``host``, sharing one port.

    With ``port=0`` the port the first family got may be taken in another family: then
    all are closed and another port is tried.
    """
    for _ in range(attempts - 1):
        try:
            return _bind_all(host, port)
        except OSError as exc:
            if port or exc.errno != errno.EADDRINUSE:
                raise
    return _bind_all(host, port)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on every address of ``host`` (for an engine to bind next)."""
    socks = listen_sockets(host, 0)
    port = int(socks[0].getsockname()[1])
    for sock in socks:
        sock.close()
    return port
