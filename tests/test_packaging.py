"""The wheel as users get it: built like the Dockerfile builds it, installed without extras.

Issue 13: a clean install could not start the collector (`cryptography` came only with the dev
extra), the schemas were not in the wheel, and the license metadata was deprecated. The wheel
is built from exactly the files the Dockerfile's build stage copies, once per module, and
installed into one fresh virtualenv (dependencies from PyPI, through pip's cache).
"""

from __future__ import annotations

import ast
import asyncio
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import aiohttp
import pytest

from stream.demo import settings_env
from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT_DEPENDENCIES = re.compile(r"^dependencies = \[(.*?)^\]", re.S | re.M)
EXTRA_LEARN = re.compile(r"^learn = \[(.*?)\]", re.S | re.M)
# import name -> distribution, where they differ
DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "faust": "faust-streaming",
    "mode": "mode-streaming",
    "jsonschema_rs": "jsonschema-rs",
    "prometheus_client": "prometheus-client",
    "sklearn": "scikit-learn",
}


def build_stage_sources() -> list[str]:
    """What the Dockerfile's build stage copies into its build directory."""
    text = DOCKERFILE.read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "the Dockerfile has a build stage and a runtime stage"
    sources: list[str] = []
    for line in stages[0].splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def run(args: list[str | Path], timeout: float, **kwargs: object) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in build_stage_sources():
        if (ROOT / name).is_dir():
            # symlinks kept: stream/schemas -> ../schemas, as Docker's COPY keeps it
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, src], timeout=300)
    (found,) = out.glob("leadstream-*.whl")
    return found


@pytest.fixture(scope="module")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding the wheel and its declared dependencies, no extras."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", venv], timeout=120)
    run([venv / "bin/python", "-m", "pip", "install", "-q", wheel], timeout=900)
    return venv


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that could put the checkout on sys.path."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("LEADSTREAM_")
    }


# --- the wheel's contents and metadata --------------------------------------------------------


def test_wheel_ships_schemas_types_and_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = email.parser.Parser().parsestr(
            zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    for schema in (ROOT / "schemas").glob("*.schema.json"):
        assert f"stream/schemas/{schema.name}" in names
    assert "stream/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "License" not in metadata  # the deprecated free-text field
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL", []))
    assert {"Homepage", "Repository", "Issues"} <= set(urls)


def test_license_is_the_apache_license() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) > 200  # the full text, not a notice


def _names(block: str) -> set[str]:
    """Distribution names of a TOML list of requirement strings."""
    requirements = re.findall(r'"([^"]+)"', re.sub(r"#.*", "", block))
    return {re.split(r"[=<>\[ ;]", r.strip())[0].lower() for r in requirements}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """Read from the source, so a new import without a dependency fails here at once. What an
    optional extra provides (`learn`) may only be imported inside a function: the package
    must import without it (the clean-install test imports every module)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = _names(PYPROJECT_DEPENDENCIES.search(pyproject).group(1))
    extra = _names(EXTRA_LEARN.search(pyproject).group(1))
    imported: dict[str, str] = {}
    at_top: dict[str, str] = {}
    for path in sorted((ROOT / "stream").rglob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top != "stream":
                    imported.setdefault(top, str(path.relative_to(ROOT)))
                    if id(node) in top_level:
                        at_top.setdefault(top, str(path.relative_to(ROOT)))

    def distribution(top: str) -> str:
        return DISTRIBUTIONS.get(top, top).replace("_", "-")

    missing = {
        distribution(top): where
        for top, where in imported.items()
        if distribution(top) not in declared and distribution(top) not in extra
    }
    assert not missing, f"imported but not in [project] dependencies: {missing}"
    eager = {
        distribution(top): where
        for top, where in at_top.items()
        if distribution(top) not in declared
    }
    assert not eager, f"an optional extra's module imported at module level: {eager}"


def test_dockerfile_installs_the_wheel_it_builds() -> None:
    text = DOCKERFILE.read_text()
    build, runtime = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert build.startswith("python:3.11-slim AS build")
    assert "pip wheel --no-deps --wheel-dir /wheels ." in build
    assert runtime.startswith("python:3.11-slim\n")
    assert "COPY --from=build /wheels /wheels" in runtime
    assert "pip install /wheels/*.whl" in runtime
    assert "pip install ." not in runtime and "[dev]" not in text
    assert {"pyproject.toml", "README.md", "LICENSE", "stream", "schemas"} <= set(
        build_stage_sources()
    )


# --- the clean install ------------------------------------------------------------------------

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import stream
bad = []
names = [m.name for m in pkgutil.walk_packages(stream.__path__, "stream.",
                                                onerror=lambda n: bad.append(n))]
for name in names:
    if name == "stream.__main__":
        continue  # runs the CLI; `leadstream --help` below covers it
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name}: {type(exc).__name__}: {exc}")
from stream import jsonschemas
jsonschemas.validator("replay-input.schema.json").validate(
    {"event_id": "e1", "type": "web.page_view", "occurred_at": "2026-01-05T10:00:00Z",
     "channel": "web", "source": "website", "lead_id": "L1", "properties": {}})
print(json.dumps({"file": stream.__file__, "modules": len(names), "bad": bad}))
"""


@pytest.mark.integration
def test_clean_install_imports_every_module(clean_venv: Path, tmp_path: Path) -> None:
    out = run([clean_venv / "bin/python", "-c", IMPORT_ALL], 120, cwd=tmp_path, env=clean_env())
    result = json.loads(out.splitlines()[-1])
    assert result["bad"] == []
    assert Path(result["file"]).is_relative_to(clean_venv), "imported the checkout, not the wheel"
    assert result["modules"] >= len(list((ROOT / "stream").rglob("*.py"))) - 1
    assert "Usage: leadstream" in run([clean_venv / "bin/leadstream", "--help"], 60, cwd=tmp_path)


def start(leadstream: Path, name: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`leadstream NAME` in `cwd` (not the checkout), logging to NAME.log there."""
    with (cwd / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [leadstream, name],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )


async def answers(url: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    """Until `url` answers 200; fails at once, with the log, when a process has exited."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    log = (logs / f"{name}.log").read_text()[-3000:]
                    pytest.fail(f"{name} exited with {proc.returncode}:\n{log}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.3)
    pytest.fail(f"{url} did not answer 200 within 120 s; logs in {logs}")


@pytest.mark.integration
async def test_clean_install_runs_the_three_processes(
    clean_venv: Path, settings: Settings, tmp_path: Path
) -> None:
    """Collector, worker and notifier from the clean venv against the test broker and Redis.

    Ready means able to work (`stream/health.py`): /readyz of each process answers 200 — the
    collector's producer is connected, the worker has its partitions and recovered tables, the
    notifier's consumer has joined.
    """
    # No receiver here: the notifier must be told that the log is all it delivers to.
    env = {**clean_env(), **settings_env(settings.replace(notifier_sinks="log"))}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("collector", "worker", "notifier"):
            procs[name] = start(clean_venv / "bin/leadstream", name, tmp_path, env)
        host = settings.collector_host
        await asyncio.gather(
            answers(f"http://{host}:{settings.collector_port}/readyz", procs, tmp_path),
            answers(f"http://{host}:{settings.worker_port}/readyz", procs, tmp_path),
            answers(f"http://{host}:{settings.notifier_port}/readyz", procs, tmp_path),
        )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
