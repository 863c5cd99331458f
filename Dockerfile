# leadstream: one image for the collector, the worker and the notifier (`leadstream <command>`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package needs: the build context also holds .venv and local Kafka data.
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN pip install . \
    && useradd --system --create-home --uid 10001 leadstream \
    && mkdir -p /data \
    && chown leadstream /data

USER leadstream
# Worker state (RocksDB tables); a volume in compose, a PersistentVolume in Kubernetes.
ENV LEADSTREAM_DATA_DIR=/data/worker
VOLUME ["/data"]
EXPOSE 8080 6066 6067

ENTRYPOINT ["leadstream"]
CMD ["--help"]
