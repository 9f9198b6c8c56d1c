#!/bin/sh
# Entry point of the Mastery image: names the three processes the image runs, so compose, Fly
# and `docker run` agree on how each starts. Anything else runs as given (`flask --app app ...`).
#   web      gunicorn on 0.0.0.0:$PORT with gunicorn.conf.py (workers: WEB_CONCURRENCY, default 2)
#   worker   the Celery worker (prefork, WORKER_CONCURRENCY processes, default 2)
#   migrate  `flask --app app db upgrade` (the release command: run once before web and worker)
set -eu

# prometheus_client writes into PROMETHEUS_MULTIPROC_DIR as soon as the app is imported (by any
# command, not only gunicorn, whose on_starting hook would create it): it must exist.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

case "${1:-web}" in
web)
    shift || true
    # No control socket: it would need a writable $HOME, and nothing in a container uses it.
    exec python -m gunicorn 'app:create_app()' -c gunicorn.conf.py \
        --bind "0.0.0.0:${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}" \
        --timeout "${GUNICORN_TIMEOUT:-30}" --graceful-timeout 25 --no-control-socket "$@"
    ;;
worker)
    shift
    # The prefork pool's processes write their metric values here (WORKER_METRICS_PORT); a
    # directory of its own, emptied at start, so a restart does not add up stale values.
    export PROMETHEUS_MULTIPROC_DIR="${WORKER_MULTIPROC_DIR:-/tmp/mastery-worker-metrics}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    exec python -m celery -A app.jobs.worker worker --loglevel "${LOG_LEVEL:-INFO}" \
        --pool prefork --concurrency "${WORKER_CONCURRENCY:-2}" \
        --without-gossip --without-mingle "$@"
    ;;
migrate)
    shift
    exec python -m flask --app app db upgrade "$@"
    ;;
*)
    exec "$@"
    ;;
esac
