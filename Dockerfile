# codeq server image: `docker build -t codeq .` then `docker run -p 8080:8080 -e … codeq`.
# The build stage installs the package and its `server` extra into a virtualenv and compiles
# the hot path there with mypyc (ADR 0010); the runtime stage copies only that virtualenv, so
# no compiler, mypy, pip cache or source tree ships.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The C compiler lives in this stage only; Debian's own versions of the day are the ones wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/codeq
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/codeq/bin/pip install ".[server,native]" \
    && /opt/codeq/bin/python -m codeq.native \
    && /opt/codeq/bin/pip uninstall --yes mypy

FROM python:3.11-slim-bookworm
# A fixed uid/gid so volume ownership and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 codeq \
    && useradd --system --uid 10001 --gid codeq --home-dir /var/lib/codeq --no-create-home codeq \
    && mkdir -p /var/lib/codeq \
    && chown codeq:codeq /var/lib/codeq
COPY --from=build /opt/codeq /opt/codeq
# Configuration uses the server's documented environment names (README "Serving"); everything
# else (auth, Raft, shards) is the operator's to set. ENV is not dev: a container is never
# allowed the public dev tokens unless it says so.
ENV PATH=/opt/codeq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    PRODUCER_STREAM_ADDR=0.0.0.0:9092 \
    WORKER_STREAM_ADDR=0.0.0.0:9091 \
    PERSISTENCE_PROVIDER=embedded \
    PERSISTENCE_CONFIG='{"path":"/var/lib/codeq"}' \
    LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/codeq
VOLUME ["/var/lib/codeq"]
# HTTP API and /metrics, worker stream, producer stream, Raft (shard i listens on 7000 + i).
EXPOSE 8080 9091 9092 7000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]
ENTRYPOINT ["codeq"]
CMD ["serve"]
