"""The Celery worker's entry point: `celery -A app.jobs.worker worker --loglevel INFO`.

It builds the Flask application from the environment (the same settings as the web process)
and exposes that application's Celery instance. `create_app` also configures the JSON logs
(Celery keeps them: app.jobs.celery_app answers its `setup_logging` signal) and, when
SENTRY_DSN is set, starts Sentry with the Celery integration before the Celery app is built, once
per process; the prefork pool's children inherit both.
"""

from __future__ import annotations

from app import create_app
from app.jobs.celery_app import get_celery
from app.observability import worker_metrics

flask_app = create_app()
celery = get_celery(flask_app)
worker_metrics.init_worker(flask_app.extensions["mastery.settings"])
