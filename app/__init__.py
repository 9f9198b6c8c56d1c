"""Mastery: an AI-assisted adaptive-learning JSON API.

`create_app()` builds the application from `Settings` (environment variables by default).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask
from flask import Flask
from flask.sessions import SessionInterface

from app import docs_ui, errors, openapi, security, storage
from app.ai import runtime as ai_runtime
from app.auth import tokens
from app.auth.decorators import SECURITY_SCHEME
from app.config import Settings
from app.db import Database, build_engine
from app.jobs import celery_app
from app.observability import drill
from app.observability import logging as observability_logging
from app.observability import metrics, request_id, sentry

__version__ = "0.1.0"


class NoCookieSessions(SessionInterface):
    """No Flask cookie session: a JSON API authenticated by bearer tokens keeps none, and
    Flask's default would still look for, and sign, a session cookie on every request."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None  # Flask then uses its NullSession, which refuses writes

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        return None


def create_app(settings: Settings | None = None) -> APIFlask:
    """Build the application; hardened environments refuse insecure settings here."""
    settings = settings or Settings()
    settings.check_hardened()

    app = APIFlask(
        __name__,
        title="Mastery API",
        version=__version__,
        spec_path="/openapi.json",
        docs_path="/docs",
        static_folder=None,  # type: ignore[arg-type]  # Flask accepts None (no /static route); APIFlask's hint is narrower
    )
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        DEBUG=settings.debug,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SECURITY_SCHEMES={
            SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        },
        AUTO_OPERATION_ID=True,
        # Off: APIFlask would write the host of the first request for /openapi.json into
        # `servers` and cache it, so "Try it out" in /docs would call that host (blocked by the
        # CSP's connect-src 'self' whenever it differs, e.g. behind a proxy). Without `servers`
        # Swagger UI calls the origin the page came from.
        AUTO_SERVERS=False,
        DESCRIPTION="Adaptive practice with AI-generated items, grading and hints. "
        "Errors are application/problem+json (RFC 9457).",
    )
    app.extensions["mastery.settings"] = settings
    app.session_interface = NoCookieSessions()

    request_id.init_app(app)
    metrics.init_app(app)  # before security: requests it answers early are counted too
    observability_logging.init_app(app, settings.log_level)
    if sentry.init_sentry(settings, __version__):
        app.before_request(sentry.tag_request)
    security.init_app(app, settings)
    drill.init_app(app, settings)  # after security: a drill request is still rate limited
    errors.init_app(app)
    docs_ui.init_app(app)
    database = Database(build_engine(settings.database_url, settings.database_pool_size))
    database.init_app(app)
    metrics.init_engine(database.engine)
    storage.init_app(app, settings)
    tokens.init_app(app, settings)
    ai_runtime.init_app(app, settings)
    celery_app.init_app(app, settings)

    from app import health
    from app.admin.routes import bp as admin_bp
    from app.auth.routes import bp as auth_bp
    from app.content.routes import bp as content_bp
    from app.jobs.routes import bp as jobs_bp
    from app.learning.routes import bp as learning_bp
    from app.ops import cli

    app.register_blueprint(health.bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(content_bp)
    app.register_blueprint(learning_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(admin_bp)
    cli.init_app(app)
    app.spec_processor(openapi.finish_spec)
    return app
