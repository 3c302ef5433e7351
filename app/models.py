"""Imports every model so that Alembic and create_all see all tables."""
from app.auth.models import ApiKey, LoginSession, RefreshToken, User  # noqa: F401
from app.notify.events import Event  # noqa: F401
