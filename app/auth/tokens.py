"""JWT access and refresh tokens (PyJWT). The algorithm is fixed on decode; every claim is required."""
import secrets
from datetime import timedelta

import jwt
from flask import current_app

from app import clock
from app.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "type", "sid"]
_SECRET_SETTING = {"access": "TOKEN_SECRET", "refresh": "REFRESH_TOKEN_SECRET"}
_TTL_SETTING = {"access": "ACCESS_TOKEN_TTL", "refresh": "REFRESH_TOKEN_TTL"}


def issue(kind: str, user_id: int, session_id: str) -> tuple[str, dict]:
    now = clock.utcnow()
    ttl = current_app.config[_TTL_SETTING[kind]]
    claims = {"sub": str(user_id), "sid": session_id, "jti": secrets.token_hex(16), "type": kind,
              "iat": now, "exp": now + timedelta(seconds=ttl)}
    token = jwt.encode(claims, current_app.config[_SECRET_SETTING[kind]], algorithm=ALGORITHM)
    return token, claims


def decode(kind: str, token: str) -> dict:
    try:
        claims = jwt.decode(token, current_app.config[_SECRET_SETTING[kind]], algorithms=[ALGORITHM],
                            options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token has expired", {"reason": "expired"}, code="TOKEN_EXPIRED") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("Invalid token", {"reason": str(exc)}, code="INVALID_TOKEN") from None
    if claims.get("type") != kind:
        raise Unauthorized(f"Expected a {kind} token", {"reason": "wrong token type"}, code="INVALID_TOKEN")
    return claims
