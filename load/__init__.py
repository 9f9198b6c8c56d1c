"""Load testing (docs/load-testing.md): Locust scenarios per role, load shapes, thresholds and
their evaluation, the benchmark-only baseline app, and the runner behind `nox -s load` that
starts a production-like stack, seeds it, loads it and measures CPU per request.

Nothing here is part of the product: the platform never imports this package.
"""
