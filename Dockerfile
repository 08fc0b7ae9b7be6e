# syntax=docker/dockerfile:1
# The service, installed from requirements.lock (pinned, hashed) and the project's own
# wheel into a virtualenv that is the only thing the final stage takes: no wheel, pip
# cache or build tool stays in any layer of the image. The Avro schemas ship inside
# the wheel, so nothing else is copied and TRACE_SCHEMA_DIR is not needed.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# The dependencies first: this layer is rebuilt only when the lock changes. Binary
# wheels only: a slim image has no compiler, and the lock's hashes are the wheels'.
COPY requirements.lock ./
RUN python -m venv /opt/trace-stream \
 && /opt/trace-stream/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
      -r requirements.lock
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY trace_stream ./trace_stream
# --no-deps: every dependency came from the lock above; pip would fail on one missing.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
 && /opt/trace-stream/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && /opt/trace-stream/bin/pip check \
 && /opt/trace-stream/bin/trace-stream --version

FROM ${PYTHON_IMAGE}
# VERSION must be pyproject.toml's (tests/packaging/test_layout.py checks the default);
# SOURCE is where the image was built from: pass it, e.g. --build-arg SOURCE=<repo URL>.
ARG VERSION=0.1.0
ARG SOURCE=""
LABEL org.opencontainers.image.title="trace-stream" \
      org.opencontainers.image.description="Publishes closed trades, redacted, to third-party performance trackers from Kafka." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}"
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin trace
# Same base image, same path: the virtualenv works as it was built.
COPY --from=build /opt/trace-stream /opt/trace-stream
# MALLOC_ARENA_MAX: glibc gives each thread that allocates an arena of its own (up to
# 8 per core), and librdkafka runs several threads per client; two arenas keep the
# memory freed after a backlog is read from staying with the process (bench/memory.py:
# 164 MiB after reading 1,000,000 trades, against 245 MiB without).
ENV PATH=/opt/trace-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2
USER 10001
EXPOSE 9108
ENTRYPOINT ["trace-stream"]
CMD ["run"]
