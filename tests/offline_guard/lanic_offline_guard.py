"""The offline guard: a connection to anything but loopback (or a local socket file) is refused
and recorded. The test session installs it in-process (``tests/conftest.py``) and, through
``sitecustomize.py`` in this folder on ``PYTHONPATH``, in every Python subprocess the tests start
(CLI runs, torchrun workers, kill -9 targets), so Hub calls, analytics or telemetry fail where
they happen."""

from __future__ import annotations

import ipaddress
import os
import socket

_REAL = (socket.socket.connect, socket.socket.connect_ex)


def allowed(address) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX
    host = str(address[0])
    if host in ("localhost", "0.0.0.0", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(record: list[str] | None = None, log_path: str | None = None) -> None:
    """Refuse non-loopback connections; append each attempt to ``record`` and/or ``log_path``."""
    real_connect, real_connect_ex = _REAL

    def note(address) -> None:
        if record is not None:
            record.append(repr(address))
        if log_path:
            with open(log_path, "a") as f:
                f.write(f"{os.getpid()}\t{address!r}\n")

    def guard(self, address):
        if not allowed(address):
            note(address)
            raise ConnectionRefusedError(f"lanic-hub tests are offline: connection to {address!r} refused")
        return real_connect(self, address)

    def guard_ex(self, address):
        if not allowed(address):
            note(address)
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = guard, guard_ex


def uninstall() -> None:
    socket.socket.connect, socket.socket.connect_ex = _REAL
