"""BPMN models and small HTTP helpers for the worker API tests."""
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bpmn"

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="http://bpmn.io/schema/bpmn">')


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def task(el_id, job_type, retries=3, headers=None, name=None):
    hs = "".join(f'<zeebe:header key="{k}" value="{v}" />' for k, v in (headers or {}).items())
    hs = f"<zeebe:taskHeaders>{hs}</zeebe:taskHeaders>" if hs else ""
    label = f' name="{name}"' if name else ""
    return (f'<bpmn:serviceTask id="{el_id}"{label}><bpmn:extensionElements><zeebe:taskDefinition type="{job_type}" '
            f'retries="{retries}" />{hs}</bpmn:extensionElements></bpmn:serviceTask>')


def flow(el_id, source, target, condition=None):
    cond = ("" if condition is None else
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>')
    return f'<bpmn:sequenceFlow id="{el_id}" sourceRef="{source}" targetRef="{target}">{cond}</bpmn:sequenceFlow>'


def model(process_id, body, after=""):
    return (f'{HEAD}<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>{after}'
            f'</bpmn:definitions>').encode()


def one_task(process_id="one", job_type="work", retries=3, headers=None):
    return model(process_id, '<bpmn:startEvent id="s" /><bpmn:endEvent id="e" />'
                 + task("t", job_type, retries, headers, name="Do the work")
                 + flow("f1", "s", "t") + flow("f2", "t", "e"))


def two_tasks(process_id="two", first="first", second="second"):
    return model(process_id, '<bpmn:startEvent id="s" /><bpmn:endEvent id="e" />'
                 + task("a", first, name="First") + task("b", second, name="Second")
                 + flow("f1", "s", "a") + flow("f2", "a", "b") + flow("f3", "b", "e"))


class Api:
    """The worker API through a Flask test client or `requests` against a live server."""

    def __init__(self, client, headers, base=""):
        self.client, self.headers, self.base = client, headers, base

    def call(self, method, path, **kw):
        res = getattr(self.client, method)(self.base + path, headers=self.headers, **kw)
        body = res.get_json() if hasattr(res, "get_json") else res.json()
        return res.status_code, body

    def deploy(self, xml):
        status, body = self.call("post", "/api/v1/processes", data=xml)
        assert status in (200, 201), body
        return body["data"]

    def start(self, process_id, variables=None):
        status, body = self.call("post", "/api/v1/process-instances",
                                 json={"process_id": process_id, "variables": variables or {}})
        assert status == 201, body
        return body["data"]

    def activate(self, job_type, worker="w1", max_jobs=10, timeout=60000, request_timeout=0, **extra):
        status, body = self.call("post", "/api/v1/jobs/activate", json={
            "type": job_type, "worker": worker, "max_jobs": max_jobs, "timeout": timeout,
            "request_timeout": request_timeout, **extra})
        assert status == 200, body
        return body["data"]["jobs"]

    def complete(self, key, variables=None, **extra):
        return self.call("put", f"/api/v1/jobs/{key}/complete", json={"variables": variables or {}, **extra})

    def job(self, key):
        return self.call("get", f"/api/v1/jobs/{key}")

    def instance(self, key):
        status, body = self.call("get", f"/api/v1/process-instances/{key}")
        assert status == 200, body
        return body["data"]
