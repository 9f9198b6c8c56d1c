"""Swagger UI assets served from an installed package, so /docs works offline.

The assets come from swagger-ui-py's static folder (Swagger UI 5.x): swagger-ui-bundle ships
4.15, which cannot render the OpenAPI 3.1 document APIFlask produces (docs/decisions/0002).
"""

from __future__ import annotations

from importlib.resources import files

from apiflask import APIFlask
from flask import Blueprint

ASSETS_DIR = files("swagger_ui") / "static"

STATIC_URL = "/docs/static"


def init_app(app: APIFlask) -> None:
    assets = Blueprint(
        "swagger_ui_assets",
        __name__,
        static_folder=str(ASSETS_DIR),
        static_url_path=STATIC_URL,
    )
    app.register_blueprint(assets)
    app.config.update(
        SWAGGER_UI_CSS=f"{STATIC_URL}/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{STATIC_URL}/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{STATIC_URL}/swagger-ui-standalone-preset.js",
        DOCS_FAVICON=f"{STATIC_URL}/favicon-32x32.png",
    )
