# syntax=docker/dockerfile:1
# Mastery's one container image: the web process (gunicorn, the default command), the Celery
# worker and the release/migration command are three commands of this same image, so what
# passed the smoke suite in staging is byte for byte what runs in production.
#
#   docker build -t mastery .
#   docker run mastery                                   # web: gunicorn on :8000
#   docker run mastery worker                            # the Celery worker
#   docker run mastery migrate                           # `flask --app app db upgrade`
#   docker run mastery flask --app app keys rotate       # any other command runs as given
#
# Linted by hadolint in `nox -s lint`; built and pushed by .github/workflows/image.yml.

# Both stages start from the same base: by default the official image pinned by patch release
# and by digest (the multi-arch index of python:3.11.14-slim-bookworm), so a rebuild cannot
# silently pick up another image. BASE_IMAGE replaces it where no registry answers: the local
# Debian bookworm base that tools/container_images.py makes (docs/deployment.md, "Images
# without a registry"). Dependabot (`docker` ecosystem in .github/dependabot.yml) proposes new
# releases of the default.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- builder: a virtual environment with exactly the locked runtime dependencies ------------
FROM ${BASE_IMAGE} AS builder

# Offline builds pass PIP_NO_INDEX=1 and PIP_FIND_LINKS=/tmp/wheels: the wheels that
# tools/container_images.py downloaded on the host into build/wheels/ (hashes still checked).
ARG PIP_NO_INDEX=0
ARG PIP_FIND_LINKS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
# build/wheel[s]: the glob lets the directory be absent (a registry build downloads instead).
COPY requirements.txt build/wheel[s] /tmp/wheels/
# --require-hashes: every file must match the lock. --only-binary: wheels only, so nothing is
# compiled and neither stage needs a compiler; a dependency without a wheel fails the build
# here instead of pulling gcc into the image.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
        -r /tmp/wheels/requirements.txt \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# --- runtime: the venv and the application, run as an unprivileged user ---------------------
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="mastery" \
      org.opencontainers.image.description="Mastery adaptive-learning API: web, worker and migrations" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/mastery-metrics

# A fixed uid/gid so volume permissions and `runAsUser` policies can name it.
# pg_dump / pg_restore for `flask --app app backup` (docs/data-management.md): the client of the
# server's major version, from Debian itself. Not pinned to a patch version on purpose: each
# image build should pick up Debian's security fixes for it. A base that already has it (the
# local one, built where containers cannot reach the package mirror) skips the install.
# hadolint ignore=DL3008
RUN if ! command -v pg_dump >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends postgresql-client-15 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --system --gid 10001 mastery \
    && useradd --system --uid 10001 --gid mastery --home-dir /app --shell /usr/sbin/nologin mastery

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root gunicorn.conf.py ./
COPY --chown=root:root deploy/docker/entrypoint.sh /usr/local/bin/mastery-entrypoint
# Only instance/ (the file storage fallback) is writable by the app user.
RUN mkdir -p /app/instance \
    && chown mastery:mastery /app/instance \
    && chmod 0755 /usr/local/bin/mastery-entrypoint
EXPOSE 8000

# Liveness only (/healthz answers without touching the database), through Python because the
# slim image has no curl. Plain HTTP on loopback is allowed: /healthz is exempt from the
# HTTPS redirect. The worker command overrides this check (see docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

ENTRYPOINT ["mastery-entrypoint"]
CMD ["web"]

# The application code last: a change to app/ rebuilds only the steps from here on (each step
# copies the whole file system on the vfs storage driver of the CI machines, docs/benchmarks.md).
# Code stays root-owned, read-only to the process.
COPY --chown=root:root app ./app
RUN python -m compileall -q /app/app
USER 10001:10001
