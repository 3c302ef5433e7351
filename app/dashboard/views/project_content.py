"""A project's validation rules and test scenarios: create, edit and delete from the project page."""
from flask import flash, g, redirect, request, url_for

from app.dashboard import PREFIX, bp, forms
from app.dashboard.guard import signed_in
from app.errors import AppError
from app.projects import content

ACTIONS = {
    ("rules", "create"): lambda pid, item, data: content.create_rule(project_id=pid, user=g.user, data=data),
    ("rules", "update"): lambda pid, item, data: content.update_rule(project_id=pid, user=g.user, rule_id=item,
                                                                     data=data),
    ("rules", "delete"): lambda pid, item, data: content.delete_rule(project_id=pid, user=g.user, rule_id=item),
    ("scenarios", "create"): lambda pid, item, data: content.create_scenario(project_id=pid, user=g.user, data=data),
    ("scenarios", "update"): lambda pid, item, data: content.update_scenario(project_id=pid, user=g.user,
                                                                             scenario_id=item, data=data),
    ("scenarios", "delete"): lambda pid, item, data: content.delete_scenario(project_id=pid, user=g.user,
                                                                             scenario_id=item),
}
FORMS = {"rules": forms.RuleForm, "scenarios": forms.ScenarioForm}
NOUN = {"rules": "Rule", "scenarios": "Scenario"}
DONE = {"create": "added", "update": "saved", "delete": "deleted"}


def _data(kind: str) -> dict:
    args = forms.parse(FORMS[kind]())
    if kind == "rules":
        args["params"] = args.get("params") or {}
        args["name"] = args.get("name") or None
    return args


def _change(project_id: str, kind: str, action: str, item_id=None):
    # Errors go back into the page as a message naming the field, and the project page reopens the form.
    try:
        data = _data(kind) if action != "delete" else None
        ACTIONS[(kind, action)](project_id, item_id, data)
        flash(f"{NOUN[kind]} {DONE[action]}.", "success")
    except AppError as err:
        fields = err.details.get("field_errors", {})
        detail = "; ".join(f"{k}: {v}" for k, v in fields.items())
        flash(f"{NOUN[kind]} not {DONE[action]}: {detail or err.message}", "error")
        if err.status == 404:
            raise
    return redirect(url_for("dashboard.project", project_id=project_id, _anchor=kind), code=303)


@bp.post(f"{PREFIX}/projects/<project_id>/<any(rules, scenarios):kind>")
@signed_in()
def create_content(project_id, kind):
    return _change(project_id, kind, "create")


@bp.post(f"{PREFIX}/projects/<project_id>/<any(rules, scenarios):kind>/<id:item_id>")
@signed_in()
def update_content(project_id, kind, item_id):
    return _change(project_id, kind, "delete" if request.form.get("delete") else "update", item_id)
