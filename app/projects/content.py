"""What a project holds: records (paged by key), validation rules and test scenarios."""
from sqlalchemy import func, select

from app.auth.models import User
from app.errors import NotFound, ValidationError
from app.extensions import db
from app.projects import service as projects
from app.projects.models import Record, Rule, Scenario
from app.projects.rules import RuleError, validate_rule_definition
from app.projects.scenarios import ScenarioError, validate_scenario_definition
from app.types import MAX_ROW_ID


def iter_record_pages(project_id: str, page_size: int = 2000):
    """Pages of (key, data), by key; each page is its own query, so callers may commit in between."""
    after = None
    while True:
        query = select(Record.key, Record.data).where(Record.project_id == project_id)
        if after is not None:
            query = query.where(Record.key > after)
        rows = db.session.execute(query.order_by(Record.key).limit(page_size)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def count_records(project_id: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Record).where(Record.project_id == project_id))


def list_records(*, project_id: str, user: User, limit: int = 100, after: str | None = None) -> dict:
    project = projects.get_or_404(project_id=project_id, user=user)
    query = select(Record).where(Record.project_id == project.id)
    if after is not None:
        query = query.where(Record.key > after)
    rows = db.session.scalars(query.order_by(Record.key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"records": rows, "total": count_records(project.id), "keyField": project.key_field,
            "nextAfter": rows[-1].key if more else None}


# ---- rules ----------------------------------------------------------------------------------------

def _rule_dict(rule: Rule) -> dict:
    return {"id": rule.id, "name": rule.name, "kind": rule.kind, "field": rule.field, "params": rule.params}


def _checked_rule(data: dict) -> dict:
    try:
        return validate_rule_definition({k: v for k, v in data.items() if k != "id"})
    except RuleError as exc:
        raise ValidationError(exc.field_errors) from None


def list_rules(*, project_id: str, user: User) -> list[Rule]:
    project = projects.get_or_404(project_id=project_id, user=user)
    return db.session.scalars(select(Rule).where(Rule.project_id == project.id).order_by(Rule.id)).all()


def _child_or_404(model, child_id: int, *, project_id: str, user: User, what: str, code: str):
    """A rule or scenario of a project the user may see; anything else is the same 404."""
    project = projects.get_or_404(project_id=project_id, user=user)
    child = db.session.get(model, int(child_id))
    if child is None or child.project_id != project.id:
        raise NotFound(f"No such {what}", code=code)
    return child


def get_rule(*, project_id: str, user: User, rule_id: int) -> Rule:
    return _child_or_404(Rule, rule_id, project_id=project_id, user=user, what="rule", code="RULE_NOT_FOUND")


def create_rule(*, project_id: str, user: User, data: dict) -> Rule:
    project = projects.get_or_404(project_id=project_id, user=user)
    checked = _checked_rule(data)
    rule = Rule(project_id=project.id, name=checked["name"], kind=checked["kind"], field=checked["field"],
                params=checked["params"])
    db.session.add(rule)
    db.session.commit()
    return rule


def update_rule(*, project_id: str, user: User, rule_id: int, data: dict) -> Rule:
    rule = get_rule(project_id=project_id, user=user, rule_id=rule_id)
    checked = _checked_rule(data)
    rule.name, rule.kind, rule.field, rule.params = checked["name"], checked["kind"], checked["field"], \
        checked["params"]
    db.session.commit()
    return rule


def delete_rule(*, project_id: str, user: User, rule_id: int) -> None:
    db.session.delete(get_rule(project_id=project_id, user=user, rule_id=rule_id))
    db.session.commit()


def rule_definitions(project_id: str) -> list[dict]:
    rules = db.session.scalars(select(Rule).where(Rule.project_id == project_id).order_by(Rule.id)).all()
    return [_rule_dict(r) for r in rules]


# ---- scenarios ------------------------------------------------------------------------------------

def _checked_scenario(data: dict) -> dict:
    try:
        return validate_scenario_definition({k: v for k, v in data.items() if k != "id"})
    except ScenarioError as exc:
        raise ValidationError(exc.field_errors) from None


def list_scenarios(*, project_id: str, user: User) -> list[Scenario]:
    project = projects.get_or_404(project_id=project_id, user=user)
    return db.session.scalars(select(Scenario).where(Scenario.project_id == project.id)
                              .order_by(Scenario.id)).all()


def get_scenario(*, project_id: str, user: User, scenario_id: int) -> Scenario:
    return _child_or_404(Scenario, scenario_id, project_id=project_id, user=user, what="scenario",
                         code="SCENARIO_NOT_FOUND")


def create_scenario(*, project_id: str, user: User, data: dict) -> Scenario:
    project = projects.get_or_404(project_id=project_id, user=user)
    checked = _checked_scenario(data)
    scenario = Scenario(project_id=project.id, name=checked["name"], assertions=checked["assertions"])
    db.session.add(scenario)
    db.session.commit()
    return scenario


def update_scenario(*, project_id: str, user: User, scenario_id: int, data: dict) -> Scenario:
    scenario = get_scenario(project_id=project_id, user=user, scenario_id=scenario_id)
    checked = _checked_scenario(data)
    scenario.name, scenario.assertions = checked["name"], checked["assertions"]
    db.session.commit()
    return scenario


def delete_scenario(*, project_id: str, user: User, scenario_id: int) -> None:
    db.session.delete(get_scenario(project_id=project_id, user=user, scenario_id=scenario_id))
    db.session.commit()


def scenario_definitions(project_id: str, ids: list[int] | None = None) -> list[dict]:
    query = select(Scenario).where(Scenario.project_id == project_id).order_by(Scenario.id)
    if ids:
        query = query.where(Scenario.id.in_(ids))
    return [{"id": s.id, "name": s.name, "assertions": s.assertions} for s in db.session.scalars(query)]


def check_scenario_ids(project_id: str, ids: list[int]) -> None:
    possible = [i for i in ids if 0 < i <= MAX_ROW_ID]  # PostgreSQL refuses the others in a query
    found = set(db.session.scalars(select(Scenario.id).where(Scenario.project_id == project_id,
                                                             Scenario.id.in_(possible))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"scenario_ids": f"No such scenario in this project: {missing}"})
