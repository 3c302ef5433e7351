"""Ids tell what they are: `srv1-job-…`, `srv1-elem-…`; the node id comes from the NODE_ID setting."""
import secrets
import string

from flask import current_app

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    # One draw from the OS for the whole token, not one per character (each is a system call).
    number = secrets.randbelow(len(_ALPHABET) ** length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def node_id() -> str:
    return current_app.config["NODE_ID"]


def new_key(kind: str | None, length: int = 16) -> str:
    """`srv1-job-aB3dEf9hK2mN5pQ8`; with kind None, `srv1-aB3…` (process instances)."""
    middle = f"-{kind}" if kind else ""
    return f"{node_id()}{middle}-{random_token(length)}"
