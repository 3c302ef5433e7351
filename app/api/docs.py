"""Serves the Swagger UI assets from the swagger-ui-bundle package: /docs loads nothing from the internet."""
from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs_assets", __name__)


@bp.get("/docs/assets/<path:filename>")
def asset(filename):
    return send_from_directory(str(swagger_ui_path), filename, max_age=3600)
