"""The floor that issue 3's speed target is calibrated on: activate + complete as raw SQL behind bare Flask.

No engine, no instances, history, events, schemas or API-key table: one jobs table, a header
compared with a setting, one statement per request (autocommit) on a psycopg connection per
greenlet. With FLOOR_COMPLETE_IN_TRANSACTION set, a completion instead runs in a transaction of
four round trips, as Conveyor's does (`worker_api_floor.py --transaction`). It answers in the
worker API's shapes only as far as `bench/activate_complete.lua` reads them, so the same wrk script
drives it. Served by gunicorn with the Procfile's worker class
(`bench/worker_api_floor.py` starts it); never part of the service.
"""
import os
import queue
import secrets
from contextlib import contextmanager

import psycopg
from flask import Flask, abort, jsonify, request
from psycopg.types.json import Jsonb

from app import green_wait

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_jobs (
    key text PRIMARY KEY, type text NOT NULL, state text NOT NULL, worker text,
    variables jsonb NOT NULL DEFAULT '{}', result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), activated_at timestamptz, deadline timestamptz,
    ended_at timestamptz);
CREATE INDEX IF NOT EXISTS floor_jobs_activatable ON floor_jobs (type, created_at) WHERE state = 'ACTIVATABLE';
"""
ACTIVATE = """
UPDATE floor_jobs j SET state = 'ACTIVATED', worker = %(worker)s, activated_at = now(),
       deadline = now() + %(timeout)s * interval '1 millisecond'
FROM (SELECT key FROM floor_jobs WHERE type = %(type)s AND state = 'ACTIVATABLE'
      ORDER BY created_at LIMIT %(n)s FOR UPDATE SKIP LOCKED) due
WHERE j.key = due.key
RETURNING j.key, j.type, j.worker, j.variables, j.deadline"""
COMPLETE = """
UPDATE floor_jobs SET state = 'COMPLETED', result = %(result)s, ended_at = now()
WHERE key = %(key)s AND state = 'ACTIVATED' RETURNING key, ended_at"""
LOCK = "SELECT key FROM floor_jobs WHERE key = %(key)s FOR UPDATE"


def fill(conn, job_type: str, count: int):
    conn.execute(SCHEMA)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO floor_jobs (key, type, state) VALUES (%s, %s, 'ACTIVATABLE')",
                        [(f"srv1-job-{secrets.token_hex(8)}", job_type) for _ in range(count)])


def create_app():
    green_wait.install()
    app = Flask(__name__)
    api_key = os.environ["FLOOR_API_KEY"]
    pool = queue.LifoQueue()

    @contextmanager
    def borrowed():
        try:
            conn = pool.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
        try:
            yield conn
        finally:
            pool.put(conn)

    def run(sql, params):
        with borrowed() as conn:
            return conn.execute(sql, params).fetchall()

    @app.before_request
    def authenticate():
        if request.path != "/healthz" and request.headers.get("X-API-Key") != api_key:
            abort(401)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/api/v1/jobs/activate")
    def activate():
        body = request.get_json()
        rows = run(ACTIVATE, {"worker": body["worker"], "timeout": body["timeout"], "type": body["type"],
                              "n": body.get("max_jobs", 1)})
        return jsonify(data={"jobs": [{"key": k, "type": t, "worker": w, "variables": v,
                                       "deadline": d.isoformat()} for k, t, w, v, d in rows]})

    def run_in_transaction(params):
        # As Conveyor's completion talks to the database: BEGIN, lock, write, COMMIT (four round trips)
        with borrowed() as conn, conn.transaction():
            conn.execute(LOCK, params)
            return conn.execute(COMPLETE, params).fetchall()

    complete_job = run_in_transaction if os.environ.get("FLOOR_COMPLETE_IN_TRANSACTION") else (
        lambda params: run(COMPLETE, params))

    @app.put("/api/v1/jobs/<key>/complete")
    def complete(key):
        body = request.get_json()
        rows = complete_job({"key": key, "result": Jsonb(body.get("variables") or {})})
        if not rows:
            abort(409)
        return jsonify(job_key=key, status="COMPLETED", completed_at=rows[0][1].isoformat())

    return app
