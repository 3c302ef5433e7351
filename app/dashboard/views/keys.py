"""API keys (admins): create (the key is shown once), list with last use, revoke."""
from flask import flash, g, redirect, render_template, request, url_for

from app.auth import service
from app.auth.models import PERMISSIONS
from app.dashboard import PREFIX, bp, forms
from app.dashboard.guard import signed_in
from app.errors import AppError


def _page(status=200, **extra):
    context = {"errors": {}, "form": {}, **extra}
    return render_template("keys.html", keys=service.list_keys(), permissions=PERMISSIONS, **context), status


@bp.get(f"{PREFIX}/keys")
@signed_in(admin=True)
def keys():
    return _page()


@bp.post(f"{PREFIX}/keys")
@signed_in(admin=True)
def create_key():
    try:
        args = forms.parse(forms.KeyForm())
        key, raw = service.create_key(name=args["name"], permissions=args["permissions"],
                                      tenant=args["tenant"], created_by=g.user.id)
    except AppError as err:
        return _page(err.status, error=err.message, errors=err.details.get("field_errors", {}),
                     form=request.form)
    # Rendered, not redirected: the secret must not travel through the (readable) session cookie.
    return _page(201, created=key, secret=raw)


@bp.post(f"{PREFIX}/keys/<id:key_id>/revoke")
@signed_in(admin=True)
def revoke_key(key_id):
    key, _ = service.revoke_key(key_id)  # Redis down here is down for every web process: none serves from its cache
    flash(f"Key “{key.name}” revoked: requests with it now answer 401.", "success")
    return redirect(url_for("dashboard.keys"))
