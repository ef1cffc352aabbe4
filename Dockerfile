# syntax=docker/dockerfile:1
# Build stage: install the service and its dependencies into a virtual environment.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install .

# Runtime stage: the virtual environment, the migrations, and nothing else.
FROM python:3.12-slim
# The sandbox workers' seccomp filter needs libseccomp.so.2; Debian's slim images carry it (apt
# depends on it), so this installs only on a base that lacks it, where workers would run unfiltered.
RUN ldconfig -p | grep -q 'libseccomp\.so\.2 ' || (apt-get update \
    && apt-get install -y --no-install-recommends libseccomp2 && rm -rf /var/lib/apt/lists/*)
RUN useradd --system --uid 10001 --create-home --home-dir /app odeus
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEB_CONCURRENCY=2 \
    PORT=8000
USER odeus
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2).status == 200 else 1)"]
# Migrations first (under a Postgres advisory lock, so replicas may start together), then the server.
CMD ["sh", "-c", "odeus-triggers migrate && exec odeus-triggers serve --host 0.0.0.0 --port \"$PORT\" --workers \"$WEB_CONCURRENCY\""]
