"""A single-node KRaft Kafka broker from Maven Central, run with the local JDK."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import shutil
import subprocess
import time
import uuid
from collections.abc import Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

from stream.dev.process import ManagedProcess, require_free
from stream.errors import DevEnvironmentError
from stream.settings import Settings

NO_JAVA = "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"


class LocalKafka:
    """Resolve, format, start, wait for and stop the development broker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.dev_path / "kafka"
        # Shared by every dev folder (demo, tests): the classpath only depends on the version.
        self.cache = Path.home() / ".cache" / "leadstream" / f"kafka-{settings.kafka_version}"
        self.config = self.home / "server.properties"
        self.log_dir = self.home / "logs"
        self.process = ManagedProcess("kafka", self.home / "kafka.pid", str(self.config))

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    def classpath(self) -> str:
        """The broker's classpath, resolved by Maven once and cached next to the dev folder."""
        cp_file = self.cache / "classpath.txt"
        if cp_file.exists() and all(Path(p).exists() for p in cp_file.read_text().split(":")):
            return cp_file.read_text().strip()
        java, mvn = shutil.which("java"), shutil.which("mvn")
        if java is None:
            raise DevEnvironmentError(NO_JAVA)
        if mvn is None:
            raise DevEnvironmentError(
                "mvn not found: install Maven (Debian: apt-get install maven)"
            )
        self.cache.mkdir(parents=True, exist_ok=True)
        pom = resources.files("stream.dev").joinpath("kafka-pom.xml").read_text()
        (self.cache / "pom.xml").write_text(
            pom.replace("@KAFKA_VERSION@", self.settings.kafka_version)
        )
        result = subprocess.run(
            [mvn, "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"],
            cwd=self.cache,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not cp_file.exists():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise DevEnvironmentError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:"
                f"{self.settings.kafka_version} (is Maven Central reachable? is the version "
                f"right? LEADSTREAM_KAFKA_VERSION):\n{tail}"
            )
        return cp_file.read_text().strip()

    def write_config(self) -> None:
        s = self.settings
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port, cport = s.kafka_port, s.kafka_controller_port
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(s.partitions),
            # One node: every internal topic has one replica, or groups never form.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def _java(self, *args: str, heap: str = "256m") -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise DevEnvironmentError(NO_JAVA)
        log4j = resources.files("stream.dev").joinpath("log4j2.properties")
        return [
            java,
            f"-Xms{min(256, _mib(heap))}m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            self.classpath(),
            *args,
        ]

    def format_storage(self) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        argv = self._java(
            "kafka.tools.StorageTool",
            "format",
            # One argument with "=": a URL-safe base64 id may start with "-", which the
            # tool's argument parser would take for an option (1 format in 32 failed).
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.config),
            "--ignore-formatted",
        )
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevEnvironmentError(
                f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}"
            )

    def start(self) -> bool:
        """Start the broker unless ours already runs; True when this call started it."""
        if self.process.running():
            return False
        require_free(self.settings.kafka_port, "Kafka", "LEADSTREAM_KAFKA_BOOTSTRAP")
        require_free(
            self.settings.kafka_controller_port,
            "the Kafka controller",
            "LEADSTREAM_KAFKA_CONTROLLER_PORT",
        )
        self.write_config()
        self.format_storage()
        self.process.start(
            self._java("kafka.Kafka", str(self.config), heap=self.settings.kafka_heap),
            self.log_dir / "stdout.log",
        )
        return True

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise DevEnvironmentError(
                    f"Kafka exited while starting; see {self.log_dir}/stdout.log and "
                    f"{self.log_file}"
                )
            if _run_sync(broker_answers(self.settings.kafka_bootstrap)):
                return
            time.sleep(0.5)
        raise DevEnvironmentError(
            f"Kafka did not answer on {self.settings.kafka_bootstrap} within {timeout:.0f}s; "
            f"see {self.log_file}"
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=30.0)


async def broker_answers(bootstrap: str) -> bool:
    """A real metadata request, not just an open port: the broker must be able to serve."""
    import logging

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    # While the broker boots, every refused connection would be logged as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def _mib(heap: str) -> int:
    number, unit = heap[:-1], heap[-1].lower()
    if unit == "g":
        return int(number) * 1024
    if unit == "m":
        return int(number)
    raise DevEnvironmentError(f"LEADSTREAM_KAFKA_HEAP={heap!r}: want e.g. 768m or 1g")


def _run_sync(coro: Coroutine[Any, Any, bool]) -> bool:
    """Run a check from sync code, also when the caller already runs an event loop (demo)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
