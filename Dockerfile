# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trace_stream ./trace_stream
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[s3]'

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin trace
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
COPY schemas /app/schemas
ENV TRACE_SCHEMA_DIR=/app/schemas \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
USER 10001
EXPOSE 9108
ENTRYPOINT ["trace-stream"]
CMD ["run"]
