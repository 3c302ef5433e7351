"""Server-rendered pages (Jinja), live through the WebSocket."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/dashboard")

# Pages live under /dashboard: `/jobs` and `/webhooks` belong to the JSON notification API.
PREFIX = "/dashboard"

from app.dashboard import filters  # noqa: E402,F401  (template filters and globals)
from app.dashboard.views import auth, failures, jobs, keys, project_content, projects, webhooks, workers  # noqa: E402,F401
