# syntax=docker/dockerfile:1
# Base pinned by exact version. To pin by digest as well, append the one printed by
# `docker buildx imagetools inspect python:3.11.13-slim-bookworm` (…-slim-bookworm@sha256:…).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# Build stage: the locked dependencies (hash-checked), then the service itself with --no-deps.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

# Runtime stage: the virtual environment (migrations ship inside the package), tini, nothing else.
FROM ${PYTHON_IMAGE}
# tini is PID 1: it forwards SIGTERM/SIGINT and reaps zombies. The sandbox workers' seccomp filter
# needs libseccomp.so.2; Debian's slim images carry it (apt depends on it), so the check only
# matters on a base that lacks it, where workers would run unfiltered.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && (ldconfig -p | grep -q 'libseccomp\.so\.2 ' || apt-get install -y --no-install-recommends libseccomp2) \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --create-home --home-dir /app odeus
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEB_CONCURRENCY=2 \
    PORT=8000
USER odeus
# One port for the API, /healthz, /readyz and /metrics (unauthenticated): publish it to loopback or
# a private network only, or put a proxy in front that keeps /metrics from the internet.
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2).status == 200 else 1)"]
# -g: a signal goes to tini's child's whole process group, so a `docker stop` while migrations run
# reaches `odeus-triggers migrate` (sh alone would not pass it on); the server is then exec'd.
# The drain takes up to 20 s (uvicorn's timeout_graceful_shutdown): give `docker stop -t`,
# compose's stop_grace_period or Kubernetes' terminationGracePeriodSeconds at least 30 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "-g", "--", "docker-entrypoint.sh"]
CMD []
