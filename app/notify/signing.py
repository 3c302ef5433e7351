"""Standard Webhooks signatures, and the at-rest encryption of the secrets that make them.

A delivery carries `webhook-id`, `webhook-timestamp` (epoch seconds) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, keyed with the base64 part of `whsec_…`).
"""
import base64
import hashlib
import hmac
import secrets
import time

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(secret: str, request_headers, body: bytes, now: float | None = None) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps (replays)."""
    try:
        msg_id = request_headers["webhook-id"]
        ts = int(request_headers["webhook-timestamp"])
        offered = request_headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def _fernet(setting: str) -> Fernet:
    # The setting may be any string; HKDF turns it into the 32-byte key Fernet needs.
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"conveyor-webhook-secrets").derive(
        setting.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt(setting: str, secret: str) -> str:
    return _fernet(setting).encrypt(secret.encode()).decode()


def decrypt(setting: str, token: str) -> str:
    try:
        return _fernet(setting).decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError("webhook secret cannot be decrypted: WEBHOOK_SECRET_KEY changed?") from None
