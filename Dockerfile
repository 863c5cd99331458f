# leadstream: one image for the collector, the worker and the notifier (`leadstream <command>`).
# Two stages: the first builds the wheel, the second installs only that wheel, without extras,
# so the image runs exactly the package that tests/test_packaging.py builds and starts from a
# clean virtualenv (that test builds from the files this stage copies).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package needs: the build context also holds .venv and local Kafka data.
COPY pyproject.toml README.md LICENSE ./
COPY schemas ./schemas
COPY stream ./stream
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --create-home --uid 10001 leadstream \
    && mkdir -p /data \
    && chown leadstream /data

USER leadstream
WORKDIR /home/leadstream
# Worker state (RocksDB tables); a volume in compose, a PersistentVolume in Kubernetes.
ENV LEADSTREAM_DATA_DIR=/data/worker
VOLUME ["/data"]
EXPOSE 8080 6066 6067

ENTRYPOINT ["leadstream"]
CMD ["--help"]
