"""The Celery worker's entry point: `celery -A app.jobs.worker worker --loglevel INFO`.

It builds the Flask application from the environment (the same settings as the web process)
and exposes that application's Celery instance. `create_app` also configures the JSON logs
(Celery keeps them: app.jobs.celery_app answers its `setup_logging` signal) and, when
SENTRY_DSN is set, starts Sentry with the Celery integration before the Celery app is built, once
per process; the prefork pool's children inherit both. Every worker also runs the sweeper
(app/jobs/sweeper.py), which re-queues jobs whose worker vanished, and, with
WORKER_METRICS_PORT, serves its metrics (app/observability/worker_metrics.py).
"""

from __future__ import annotations

from app import create_app
from app.config import Settings
from app.jobs import sweeper
from app.jobs.celery_app import get_celery
from app.observability import worker_metrics

flask_app = create_app()
settings: Settings = flask_app.extensions["mastery.settings"]
celery = get_celery(flask_app)
sweeper.install(celery, settings)
worker_metrics.init_worker(settings)
