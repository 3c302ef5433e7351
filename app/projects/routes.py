"""Projects API routes: projects, members, records, rules and scenarios (jobs: job_routes.py)."""
from flask import g

from app.api.projects import bp
from app.auth.guards import require_user
from app.projects import content, reconcile, registry
from app.projects import service as projects
from app.projects.schemas import (MemberCreateSchema, MemberSchema, ProjectCreateSchema, ProjectSchema,
                                  RecordPageSchema, RecordsQuery, RuleInSchema, RuleSchema, ScenarioInSchema,
                                  ScenarioSchema)


@bp.record_once
def _on_app(state):
    # Web and worker processes both build the app: the one place to load a deployment's job handlers.
    registry.import_modules(state.app.config.get("JOB_HANDLER_MODULES", []))
    # Every worker process runs the reconciler that turns a dead worker's Running jobs into Failed ones.
    state.app.extensions.setdefault("conveyor_worker_hooks", []).append(reconcile.worker_hook)


@bp.post("/projects")
@require_user()
@bp.arguments(ProjectCreateSchema)
@bp.response(201, ProjectSchema)
def create_project(args):
    """Create a project; the caller is its owner. `keyField` (default `tag`) identifies a record."""
    project = projects.create(user=g.user, name=args["name"], description=args["description"],
                              key_field=args["key_field"])
    return projects.summary(project, g.user)


@bp.get("/projects")
@require_user()
@bp.response(200, ProjectSchema(many=True))
def list_projects():
    """The projects the caller owns or belongs to (admins: all), newest first."""
    return [projects.summary(p, g.user) for p in projects.list(user=g.user)]


@bp.get("/projects/<project_id>")
@require_user()
@bp.response(200, ProjectSchema)
def get_project(project_id):
    """One project; someone else's answers 404."""
    return projects.summary(projects.get_or_404(project_id=project_id, user=g.user), g.user)


@bp.get("/projects/<project_id>/members")
@require_user()
@bp.response(200, MemberSchema(many=True))
def list_members(project_id):
    """The owner and the members of a project."""
    return projects.list_members(project_id=project_id, user=g.user)


@bp.post("/projects/<project_id>/members")
@require_user()
@bp.arguments(MemberCreateSchema)
@bp.response(201, MemberSchema)
@bp.alt_response(403, description="Only the owner manages members (`FORBIDDEN`)")
@bp.alt_response(409, description="Already a member (`ALREADY_MEMBER`)")
def add_member(args, project_id):
    """Add a registered user, by e-mail, as a member (owner only)."""
    return projects.add_member(project_id=project_id, user=g.user, email=args["email"], role=args["role"])


@bp.delete("/projects/<project_id>/members/<id:user_id>")
@require_user()
@bp.response(204)
@bp.alt_response(409, description="The owner cannot be removed (`OWNER_REQUIRED`)")
def remove_member(project_id, user_id):
    """Remove a member (owner only)."""
    projects.remove_member(project_id=project_id, user=g.user, member_id=user_id)


@bp.get("/projects/<project_id>/records")
@require_user()
@bp.arguments(RecordsQuery, location="query")
@bp.response(200, RecordPageSchema)
def list_records(args, project_id):
    """Records by key, a page at a time: pass the answer's `nextAfter` as `after` for the next page."""
    return content.list_records(project_id=project_id, user=g.user, limit=args["limit"], after=args["after"])


@bp.get("/projects/<project_id>/rules")
@require_user()
@bp.response(200, RuleSchema(many=True))
def list_rules(project_id):
    """The project's validation rules (required, pattern, range, allowed, unique)."""
    return content.list_rules(project_id=project_id, user=g.user)


@bp.post("/projects/<project_id>/rules")
@require_user()
@bp.arguments(RuleInSchema)
@bp.response(201, RuleSchema)
def create_rule(args, project_id):
    """Add a rule: `{kind, field, params, name?}`; params: pattern `{regex}`, range `{min?, max?}`, allowed `{values}`."""
    return content.create_rule(project_id=project_id, user=g.user, data=args)


@bp.get("/projects/<project_id>/rules/<id:rule_id>")
@require_user()
@bp.response(200, RuleSchema)
def get_rule(project_id, rule_id):
    """One rule."""
    return content.get_rule(project_id=project_id, user=g.user, rule_id=rule_id)


@bp.put("/projects/<project_id>/rules/<id:rule_id>")
@require_user()
@bp.arguments(RuleInSchema)
@bp.response(200, RuleSchema)
def update_rule(args, project_id, rule_id):
    """Replace a rule."""
    return content.update_rule(project_id=project_id, user=g.user, rule_id=rule_id, data=args)


@bp.delete("/projects/<project_id>/rules/<id:rule_id>")
@require_user()
@bp.response(204)
def delete_rule(project_id, rule_id):
    """Delete a rule."""
    content.delete_rule(project_id=project_id, user=g.user, rule_id=rule_id)


@bp.get("/projects/<project_id>/scenarios")
@require_user()
@bp.response(200, ScenarioSchema(many=True))
def list_scenarios(project_id):
    """The project's test scenarios."""
    return content.list_scenarios(project_id=project_id, user=g.user)


@bp.post("/projects/<project_id>/scenarios")
@require_user()
@bp.arguments(ScenarioInSchema)
@bp.response(201, ScenarioSchema)
def create_scenario(args, project_id):
    """Add a scenario: a name and assertions (count, all_have, none_have, all_match, exists) with expected outcomes."""
    return content.create_scenario(project_id=project_id, user=g.user, data=args)


@bp.get("/projects/<project_id>/scenarios/<id:scenario_id>")
@require_user()
@bp.response(200, ScenarioSchema)
def get_scenario(project_id, scenario_id):
    """One scenario."""
    return content.get_scenario(project_id=project_id, user=g.user, scenario_id=scenario_id)


@bp.put("/projects/<project_id>/scenarios/<id:scenario_id>")
@require_user()
@bp.arguments(ScenarioInSchema)
@bp.response(200, ScenarioSchema)
def update_scenario(args, project_id, scenario_id):
    """Replace a scenario."""
    return content.update_scenario(project_id=project_id, user=g.user, scenario_id=scenario_id, data=args)


@bp.delete("/projects/<project_id>/scenarios/<id:scenario_id>")
@require_user()
@bp.response(204)
def delete_scenario(project_id, scenario_id):
    """Delete a scenario."""
    content.delete_scenario(project_id=project_id, user=g.user, scenario_id=scenario_id)


from app.projects import job_routes  # noqa: E402,F401
