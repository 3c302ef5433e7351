"""Imports every model so that Alembic and create_all see all tables."""
from app.auth import models as _auth  # noqa: F401
from app.engine import models as _engine  # noqa: F401
from app.notify import events as _events  # noqa: F401
from app.notify import models as _notify  # noqa: F401
from app.projects import models as _projects  # noqa: F401
