#!/usr/bin/env bash
# The demo: local Kafka + Redis + collector, worker and notifier on simulated lead journeys.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/leadstream demo "$@"
