"""Webhooks: create (the signing secret shown once), edit, disable, delete; the delivery log with redeliver."""
from flask import flash, g, redirect, render_template, request, url_for

from app.dashboard import PREFIX, bp, forms
from app.dashboard.guard import signed_in
from app.errors import AppError
from app.notify import webhooks as service
from app.notify.models import EVENT_TYPES

DELIVERIES_PER_PAGE = 20


def _list_page(status=200, **extra):
    context = {"errors": {}, "form": {}, **extra}
    return render_template("webhooks.html", hooks=service.list_for(user=g.user), event_types=EVENT_TYPES,
                           **context), status


@bp.get(f"{PREFIX}/webhooks")
@signed_in()
def webhooks():
    return _list_page()


@bp.post(f"{PREFIX}/webhooks")
@signed_in()
def create_webhook():
    try:
        args = forms.parse(forms.WebhookForm())
        created = service.create(user=g.user, url=args["url"], event_type=args["eventType"],
                                 description=args["description"])
    except AppError as err:
        return _list_page(err.status, error=err.message, errors=err.details.get("field_errors", {}),
                          form=request.form)
    # Rendered, not redirected: the secret must not travel through the (readable) session cookie.
    return _list_page(201, created=created)


def _detail_page(webhook_id, status=200, **extra):
    hook = service.get_or_404(user=g.user, webhook_id=webhook_id)
    number = max(1, request.args.get("page", 1, type=int))
    log = service.list_deliveries(user=g.user, webhook_id=webhook_id, page=number, limit=DELIVERIES_PER_PAGE)
    context = {"errors": {}, **extra}
    return render_template("webhook.html", hook=hook, log=log, page=number, event_types=EVENT_TYPES,
                           **context), status


@bp.get(f"{PREFIX}/webhooks/<id:webhook_id>")
@signed_in()
def webhook(webhook_id):
    return _detail_page(webhook_id)


@bp.post(f"{PREFIX}/webhooks/<id:webhook_id>")
@signed_in()
def update_webhook(webhook_id):
    try:
        args = forms.parse(forms.WebhookForm())
        service.update(user=g.user, webhook_id=webhook_id, changes=args)
    except AppError as err:
        if err.status == 404:
            raise
        return _detail_page(webhook_id, err.status, error=err.message, errors=err.details.get("field_errors", {}))
    flash("Webhook saved.", "success")
    return redirect(url_for("dashboard.webhook", webhook_id=webhook_id), code=303)


@bp.post(f"{PREFIX}/webhooks/<id:webhook_id>/active")
@signed_in()
def toggle_webhook(webhook_id):
    active = request.form.get("active") == "1"
    service.update(user=g.user, webhook_id=webhook_id, changes={"active": active})
    flash("Webhook switched on." if active else "Webhook disabled: nothing is sent until you switch it on.",
          "success")
    return redirect(url_for("dashboard.webhook", webhook_id=webhook_id), code=303)


@bp.post(f"{PREFIX}/webhooks/<id:webhook_id>/delete")
@signed_in()
def delete_webhook(webhook_id):
    service.delete(user=g.user, webhook_id=webhook_id)
    flash("Webhook deleted.", "success")
    return redirect(url_for("dashboard.webhooks"), code=303)


@bp.post(f"{PREFIX}/webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/redeliver")
@signed_in()
def redeliver(webhook_id, delivery_id):
    try:
        service.redeliver(user=g.user, webhook_id=webhook_id, delivery_id=delivery_id)
        flash("Delivery queued again.", "success")
    except AppError as err:
        if err.status == 404:
            raise
        flash(err.message, "error")
    return redirect(url_for("dashboard.webhook", webhook_id=webhook_id), code=303)
