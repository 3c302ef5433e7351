"""Users, logins and API keys. Each public function owns its transaction."""
import hashlib
import logging
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from argon2 import PasswordHasher
from flask import current_app
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from app import clock, dbsetup
from app.auth import key_cache, tokens
from app.auth.models import PERMISSIONS, ApiKey, LoginSession, RefreshToken, User
from app.errors import Conflict, NotFound, Unauthorized, ValidationError
from app.extensions import db, get_redis, scoped_channel

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password")
log = logging.getLogger("conveyor.auth")
KEY_PREFIX = "cvk_"
LAST_USED_RESOLUTION = timedelta(seconds=60)


# ---- users -------------------------------------------------------------------------------------

def create_user(*, email: str, password: str, name: str = "", is_admin: bool = False) -> User:
    email = (email or "").strip().lower()
    errors = {}
    if "@" not in email or len(email) > 254:
        errors["email"] = "A valid e-mail address is required"
    if not password or len(password) < 8:
        errors["password"] = "Password must be at least 8 characters"
    if errors:
        raise ValidationError(errors)
    password_hash = _hasher.hash(password)  # slow by design: before the write lock, not under it
    with dbsetup.write(db.session):
        if db.session.scalar(select(User.id).where(User.email == email)) is not None:
            raise Conflict("A user with this e-mail already exists", {"email": email}, code="USER_EXISTS")
        user = User(email=email, name=name or "", password_hash=password_hash, is_admin=is_admin)
        db.session.add(user)
    return user


def get_user(user_id) -> User | None:
    return db.session.get(User, int(user_id))


def authenticate(email: str, password: str) -> User:
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("Invalid e-mail or password", code="INVALID_CREDENTIALS")
    return user


# ---- logins and tokens -------------------------------------------------------------------------

def _issue_pair(user_id: int, session_id: str) -> dict:
    access, _ = tokens.issue("access", user_id, session_id)
    refresh, claims = tokens.issue("refresh", user_id, session_id)
    db.session.add(RefreshToken(jti=claims["jti"], session_id=session_id, expires_at=claims["exp"]))
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
            "expires_in": current_app.config["ACCESS_TOKEN_TTL"]}


def login(email: str, password: str) -> dict:
    user = authenticate(email, password)
    session = LoginSession(id=secrets.token_hex(16), user_id=user.id)
    db.session.add(session)
    pair = _issue_pair(user.id, session.id)
    db.session.commit()
    return pair


def refresh(refresh_token: str) -> dict:
    claims = tokens.decode("refresh", refresh_token)
    row = db.session.get(RefreshToken, claims["jti"])
    session = db.session.get(LoginSession, claims["sid"])
    if row is None or session is None or row.session_id != session.id:
        raise Unauthorized("Unknown refresh token", code="INVALID_TOKEN")
    if session.revoked_at is not None:
        raise Unauthorized("This login has been revoked", code="TOKEN_REVOKED")
    now = clock.utcnow()
    # Single use, race-safe: only the request whose UPDATE changes the row may rotate.
    rotated = db.session.execute(
        update(RefreshToken).where(RefreshToken.jti == row.jti, RefreshToken.used_at.is_(None))
        .values(used_at=now)).rowcount
    if rotated != 1:
        _revoke_session(session, "refresh_token_reuse")
        db.session.commit()
        raise Unauthorized("Refresh token was already used; this login has been revoked",
                           code="TOKEN_REVOKED")
    pair = _issue_pair(session.user_id, session.id)
    db.session.commit()
    return pair


def _revoke_session(session: LoginSession, reason: str) -> None:
    db.session.execute(update(LoginSession).where(LoginSession.id == session.id, LoginSession.revoked_at.is_(None))
                       .values(revoked_at=clock.utcnow(), revoked_reason=reason))


def logout(session_id: str) -> None:
    session = db.session.get(LoginSession, session_id)
    if session is not None:
        _revoke_session(session, "logout")
        db.session.commit()


def user_from_access_token(token: str) -> tuple[User, str]:
    claims = tokens.decode("access", token)
    session = db.session.get(LoginSession, claims["sid"])
    if session is None or session.revoked_at is not None:
        raise Unauthorized("This login has been revoked", code="TOKEN_REVOKED")
    user = db.session.get(User, int(claims["sub"]))
    if user is None or user.id != session.user_id:
        raise Unauthorized("Unknown user", code="INVALID_TOKEN")
    return user, session.id


# ---- API keys ----------------------------------------------------------------------------------

def _hash_key(secret: str) -> str:
    # Keys are 190 bits of randomness, so a fast hash is safe here and keeps every request cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_permissions(value) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    perms = sorted({p.strip() for p in items if p and p.strip()})
    unknown = [p for p in perms if p not in PERMISSIONS]
    if unknown or not perms:
        raise ValidationError({"permissions": f"Choose from {', '.join(PERMISSIONS)}"
                                              + (f"; unknown: {', '.join(unknown)}" if unknown else "")})
    return perms


def create_key(*, name: str, permissions, tenant: str = "default", created_by: int | None = None) -> tuple[ApiKey, str]:
    name = (name or "").strip()
    tenant = (tenant or "default").strip()
    errors = {}
    if not name or len(name) > 100:
        errors["name"] = "Name is required (at most 100 characters)"
    if not tenant or len(tenant) > 100:
        errors["tenant"] = "Tenant must be 1-100 characters"
    if errors:
        raise ValidationError(errors)
    perms = parse_permissions(permissions)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    with dbsetup.write(db.session):
        key = ApiKey(name=name, prefix=prefix, key_hash=_hash_key(secret), permissions=perms, tenant=tenant,
                     created_by=created_by)
        db.session.add(key)
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(key_id: int) -> tuple[ApiKey, bool]:
    """Revoke a key, and say whether every web process was told to forget it at once (False when
    Redis is unreachable: a process holding it in its cache accepts it up to API_KEY_CACHE_SECONDS more)."""
    # Read and written in one write transaction: on SQLite a read left open, then written, fails at
    # once if another process wrote in between (a worker, the timeout sweep).
    with dbsetup.write(db.session):
        key = db.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound("API key not found", {"key_id": key_id}, code="KEY_NOT_FOUND")
        if key.revoked_at is None:
            key.revoked_at = clock.utcnow()
    key_cache.cache.drop(key_id)  # after the commit, so no lookup can cache the key as it was
    # Sent directly, not after commit through the publisher, so the caller learns whether it went;
    # also on a repeated revoke, which is how to tell web processes once Redis is back.
    try:
        client = get_redis()
        client.publish(scoped_channel(client, key_cache.CHANNEL), str(key_id))
    except redis.RedisError:
        return key, False
    return key, True


@dataclass(frozen=True)
class KeyIdentity:
    """What a request knows of its API key; detached from the session so commits do not reload it."""
    id: int
    name: str
    tenant: str
    permissions: tuple

    def allows(self, permission: str) -> bool:
        return permission in self.permissions or "admin" in self.permissions


def authenticate_key(raw: str) -> KeyIdentity:
    if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
        raise Unauthorized("Unknown API key", code="UNAUTHORIZED")
    ttl = current_app.config["API_KEY_CACHE_SECONDS"]
    cached = ttl > 0 and key_cache.cache.usable(current_app.config["REDIS_URL"])
    scope = (current_app.config["SQLALCHEMY_DATABASE_URI"], _hash_key(raw)) if cached else None
    entry = key_cache.cache.get(scope) if cached else None
    if entry is None:
        generation = key_cache.cache.generation
        identity, last_used_at = _look_up_key(raw)
        entry = key_cache.Entry(identity, time.monotonic() + ttl, last_used_at)
        if cached:
            key_cache.cache.put(scope, entry, generation)
    now = clock.utcnow()
    # Written at most once a minute per key so the hot worker path does not pay a write per request.
    if entry.last_used_at is None or now - entry.last_used_at > LAST_USED_RESOLUTION:
        _record_use(entry.identity.id, now)
        entry.last_used_at = now
    return entry.identity


def _look_up_key(raw: str) -> tuple[KeyIdentity, object]:
    prefix, _, secret = raw[len(KEY_PREFIX):].partition("_")
    # Columns, not an ORM object.
    key = db.session.execute(select(ApiKey.id, ApiKey.name, ApiKey.tenant, ApiKey.permissions, ApiKey.key_hash,
                                    ApiKey.revoked_at, ApiKey.last_used_at)
                             .where(ApiKey.prefix == prefix)).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash_key(secret)):
        raise Unauthorized("Unknown API key", code="UNAUTHORIZED")
    if key.revoked_at is not None:
        raise Unauthorized("API key has been revoked", code="UNAUTHORIZED")
    return KeyIdentity(key.id, key.name, key.tenant, tuple(key.permissions)), key.last_used_at


def _record_use(key_id: int, now) -> None:
    db.session.rollback()  # end the read: SQLite cannot turn a snapshot into a write once others wrote
    try:
        with dbsetup.immediate():
            db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
            db.session.commit()
    except OperationalError:  # advisory: a busy database must not fail the request it describes
        db.session.rollback()
        log.warning("could not record last use of API key %s", key_id, exc_info=True)


def user_from_session(user_id, session_id: str) -> tuple[User, str]:
    """The dashboard's cookie session is a login like any other: logout or reuse revokes it."""
    login_session = db.session.get(LoginSession, session_id)
    if login_session is None or login_session.revoked_at is not None or login_session.user_id != int(user_id):
        raise Unauthorized("This login has been revoked", code="TOKEN_REVOKED")
    user = db.session.get(User, int(user_id))
    if user is None:
        raise Unauthorized("Unknown user", code="INVALID_TOKEN")
    return user, login_session.id


def start_browser_session(email: str, password: str) -> tuple[User, str]:
    user = authenticate(email, password)
    login_session = LoginSession(id=secrets.token_hex(16), user_id=user.id)
    db.session.add(login_session)
    db.session.commit()
    return user, login_session.id
