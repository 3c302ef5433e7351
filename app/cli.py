"""flask commands: users, API keys, first-run bootstrap."""
import secrets
import sys
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.auth import service as auth
from app.auth.models import PERMISSIONS, User
from app.errors import AppError
from app.extensions import db

users_cli = AppGroup("users", help="Manage users.")
keys_cli = AppGroup("keys", help="Manage API keys for workers.")


def _fail(err: AppError):
    details = getattr(err, "details", {}) or {}
    extra = "; ".join(f"{k}: {v}" for k, v in details.get("field_errors", {}).items())
    raise click.ClickException(err.message + (f" ({extra})" if extra else ""))


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--name", default="")
@click.option("--admin", is_flag=True, help="Administrator: sees every project and the Workers pages.")
def create_user(email, password, name, admin):
    """Create a user (password hashed with argon2)."""
    try:
        user = auth.create_user(email=email, password=password, name=name, is_admin=admin)
    except AppError as err:
        _fail(err)
    click.echo(f"created user {user.id} <{user.email}>{' (admin)' if user.is_admin else ''}")


@keys_cli.command("create")
@click.option("--name", required=True)
@click.option("--permissions", default="job", show_default=True, help=f"comma-separated: {','.join(PERMISSIONS)}")
@click.option("--tenant", default="default", show_default=True)
def create_key(name, permissions, tenant):
    """Create an API key; it is printed once, alone on the last line."""
    try:
        key, raw = auth.create_key(name=name, permissions=permissions, tenant=tenant)
    except AppError as err:
        _fail(err)
    click.echo(f"created key {key.id} '{key.name}' tenant={key.tenant} permissions={','.join(key.permissions)}")
    click.echo("store it now, it is not shown again:")
    click.echo(raw)


@keys_cli.command("list")
def list_keys():
    """List API keys (never the keys themselves)."""
    from app.clock import iso
    click.echo(f"{'ID':>4}  {'NAME':<24} {'PREFIX':<10} {'TENANT':<12} {'PERMISSIONS':<18} {'LAST USED':<25} STATUS")
    for key in auth.list_keys():
        status = "revoked" if key.revoked_at else "active"
        click.echo(f"{key.id:>4}  {key.name[:24]:<24} {key.prefix:<10} {key.tenant[:12]:<12} "
                   f"{','.join(key.permissions):<18} {iso(key.last_used_at) or 'never':<25} {status}")


@keys_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke_key(key_id):
    """Revoke an API key: requests with it answer 401 at once."""
    try:
        key, told = auth.revoke_key(key_id)
    except AppError as err:
        _fail(err)
    click.echo(f"revoked key {key.id} '{key.name}'")
    if not told:  # revoked all the same (the database is the truth); only the caches lag
        url = urlsplit(current_app.config["REDIS_URL"])
        where = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()  # never print a password
        click.echo(f"warning: Redis at {where} is unreachable, so running web processes may accept the key "
                   f"for up to {current_app.config['API_KEY_CACHE_SECONDS']} s more (API_KEY_CACHE_SECONDS)",
                   err=True)


@click.command("bootstrap")
def bootstrap():
    """First run on an empty database: create a local admin and an all-permission API key, print both once."""
    if current_app.config["PRODUCTION"]:
        click.echo("bootstrap: skipped (CONVEYOR_ENV=production; use `flask --app wsgi users create`)")
        return
    if db.session.scalar(select(func.count()).select_from(User)):
        return
    password = secrets.token_urlsafe(12)
    user = auth.create_user(email="admin@localhost", password=password, name="Local admin", is_admin=True)
    _, raw = auth.create_key(name="local-dev", permissions=list(PERMISSIONS), created_by=user.id)
    banner = "=" * 72
    click.echo(f"\n{banner}\n First run: created a local admin and an API key. They are shown once.\n"
               f"   dashboard  http://localhost:{current_app.config['PORT']}/  "
               f"e-mail admin@localhost  password {password}\n"
               f"   API key    {raw}\n{banner}\n", file=sys.stderr)


def register(app):
    app.cli.add_command(users_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(bootstrap)
