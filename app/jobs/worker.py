"""The Celery worker's entry point: `celery -A app.jobs.worker worker --loglevel INFO`.

It builds the Flask application from the environment (the same settings as the web process)
and exposes that application's Celery instance.
"""

from __future__ import annotations

from app import create_app
from app.jobs.celery_app import get_celery

flask_app = create_app()
celery = get_celery(flask_app)
