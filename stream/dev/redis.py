"""redis-server from the system package, started on loopback for development and tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from stream.dev.process import ManagedProcess, require_free
from stream.errors import DevEnvironmentError
from stream.settings import Settings

# AOF with an fsync every second (Redis's recommended trade-off): a killed redis-server loses
# nothing it has answered while the disk keeps up (Redis writes the file before it replies, and
# holds that write back only while a slow fsync runs), a machine crash about the last second.
# No RDB snapshots besides: the AOF's own base file is what a restart loads.
APPEND_ONLY = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")


def ensure_redis_server() -> str:
    """Path of redis-server; installs Debian's package when missing and we are root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DevEnvironmentError(
            "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install redis-server)"
        )
    print("redis-server not found: installing Debian's redis-server package …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevEnvironmentError(
                f"{' '.join(argv)} failed; install redis-server by hand:\n{result.stderr[-2000:]}"
            )
    found = shutil.which("redis-server")
    if not found:
        raise DevEnvironmentError("redis-server is still missing after apt-get install")
    return found


class LocalRedis:
    """A development Redis kept as production keeps it: loopback only, its own folder, and an
    append-only file fsynced every second (`APPEND_ONLY`).

    Redis holds more than a cache: the notifier's delivered markers and parked deliveries, the
    collector's webhook replay keys and the lead snapshots. Without AOF a Redis restart forgets
    them all (a delivered webhook goes out again, a replayed webhook is accepted, every lead
    answers 404), and development would hide what production must not do.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.dev_path / "redis"
        self.log_file = self.home / "redis.log"
        self.process = ManagedProcess("redis", self.home / "redis.pid", str(self.home))

    def start(self) -> bool:
        if self.process.running():
            return False
        server = ensure_redis_server()
        require_free(self.settings.redis_port, "Redis", "LEADSTREAM_REDIS_URL")
        self.home.mkdir(parents=True, exist_ok=True)
        self.process.start(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.settings.redis_port),
                "--dir",
                str(self.home),
                *APPEND_ONLY,
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            self.log_file,
        )
        return True

    def wait_ready(self, timeout: float = 20.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.exited_early():
                    raise DevEnvironmentError(
                        f"redis-server exited while starting; see {self.log_file}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.2)
        finally:
            client.close()
        raise DevEnvironmentError(
            f"Redis did not answer within {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=10.0)
