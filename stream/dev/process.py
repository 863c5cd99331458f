"""Background processes owned through pid files: start detached, find, stop exactly ours."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from stream.errors import DevEnvironmentError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel just handed out; good enough for tests and demos on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free(port: int, what: str, variable: str) -> None:
    if not port_is_free(port):
        raise DevEnvironmentError(
            f"port {port} for {what} is taken by another process: stop it, or choose another "
            f"port with {variable}"
        )


class ManagedProcess:
    """One background server identified by a pid file and a marker: a path in its command line
    or its working directory.

    The marker (a path only our process carries, such as its config file) keeps `down` from
    signalling an unrelated process that happens to reuse a stale pid.
    """

    def __init__(self, name: str, pid_file: Path, marker: str):
        self.name = name
        self.pid_file = pid_file
        self.marker = marker
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            # redis-server rewrites its title but chdirs into its folder: look at both.
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None
        return pid if self.marker in cmdline or self.marker == cwd else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> int:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the shell that ran `leadstream dev up`
                env={**os.environ, **(env or {})},
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(proc.pid))
        self._child = proc
        return proc.pid

    def exited_early(self) -> bool:
        """True when the process we started has already died (its log tells why).

        A child started by this object is asked directly: its marker (redis-server's working
        directory) may not be in place yet in the first milliseconds.
        """
        if self._child is not None:
            return self._child.poll() is not None
        return self.pid() is None

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True when something of ours was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
