"""Background jobs: Celery tasks whose truth lives in Postgres job rows."""
