"""Project jobs API (`/api`): projects, records, imports, exports, validations, test runs, jobs."""
from app.api.base import Blueprint

bp = Blueprint("projects", __name__, url_prefix="/api", description=(
    "Projects and their background jobs. Authenticate with `Authorization: Bearer <JWT>` or the "
    "dashboard session. Errors: `{\"error\": {code, message, details}, \"request_id\"}`."))

# Routes live in the projects domain and register on `bp`.
from app.projects import routes as _project_routes  # noqa: E402,F401
