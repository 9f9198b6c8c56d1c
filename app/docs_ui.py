"""Swagger UI assets served from the installed swagger-ui-bundle: /docs works offline."""

from __future__ import annotations

from apiflask import APIFlask
from flask import Blueprint
from swagger_ui_bundle import swagger_ui_path

STATIC_URL = "/docs/static"


def init_app(app: APIFlask) -> None:
    assets = Blueprint(
        "swagger_ui_assets",
        __name__,
        static_folder=str(swagger_ui_path),
        static_url_path=STATIC_URL,
    )
    app.register_blueprint(assets)
    app.config.update(
        SWAGGER_UI_CSS=f"{STATIC_URL}/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{STATIC_URL}/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{STATIC_URL}/swagger-ui-standalone-preset.js",
        DOCS_FAVICON=f"{STATIC_URL}/favicon-32x32.png",
    )
