#!/usr/bin/env bash
# Creates .venv and installs leadstream with its pinned dependencies, once per pyproject change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "leadstream needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool not found: the local Kafka broker needs a JDK 17+ and Maven" \
         "(Debian: apt-get install openjdk-17-jre-headless maven)" >&2
    exit 1
  fi
done
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
