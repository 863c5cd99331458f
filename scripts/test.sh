#!/usr/bin/env bash
# The test command: lint, types, then pytest against a real Kafka broker and a real Redis that
# the test session starts itself (tests/conftest.py). Nothing is skipped for want of a server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! { command -v promtool && command -v prometheus; } >/dev/null && [ "$(id -u)" = 0 ] \
  && command -v apt-get >/dev/null; then
  echo "installing Debian's prometheus package (promtool, and the server tests/integration/test_prometheus.py runs) …"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's redis-server package …"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium package (the report tests open the reports headless) …"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "== ruff"; .venv/bin/ruff check stream tests examples
.venv/bin/ruff format --check stream tests examples
echo "== mypy"; .venv/bin/mypy --strict stream
echo "== pytest"; .venv/bin/python -m pytest -p no:cacheprovider "$@"
