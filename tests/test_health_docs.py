"""Health checks and the OpenAPI description."""


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    res = client.get("/readyz")
    assert res.status_code == 200 and res.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_what_is_down(app, client):
    import redis

    from tests.support import free_port
    working = app.extensions["redis"]
    app.extensions["redis"] = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        res = client.get("/readyz")
    finally:
        app.extensions["redis"] = working
    assert res.status_code == 503
    assert res.get_json()["checks"]["database"] == "ok"
    assert res.get_json()["checks"]["redis"].startswith("error")


def test_openapi_describes_every_route_and_its_auth(client, app):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"ApiKeyAuth", "BearerAuth"} <= set(spec["components"]["securitySchemes"])
    assert spec["paths"]["/api/v1/jobs"]["get"]["security"] == [{"ApiKeyAuth": []}]
    assert "/auth/login" in spec["paths"]
    documented = {path for path in spec["paths"]}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/auth/", "/jobs", "/webhooks", "/submit-job")):
            path = rule.rule.replace("<", "{").replace(">", "}")
            path = __import__("re").sub(r"\{[a-z]+:", "{", path)
            assert path in documented, f"{rule.rule} is missing from the OpenAPI description"


def test_docs_page_loads_its_assets_locally(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body")[1].split("url")[0]
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
