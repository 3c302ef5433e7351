"""Login, refresh rotation, logout and JWT hardening, through /auth."""
import time
from datetime import datetime, timedelta, timezone

import jwt


def _me(client, token):
    return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_login_returns_a_bearer_pair_that_opens_user_routes(client, make_user, login):
    user = make_user()
    pair = login(user)
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    assert pair["access_token"] != pair["refresh_token"]
    res = _me(client, pair["access_token"])
    assert res.status_code == 200 and res.get_json()["email"] == user.email


def test_wrong_password_and_unknown_user_answer_the_same_401(client, make_user):
    make_user()
    for body in ({"email": "user@example.com", "password": "wrong password"},
                 {"email": "nobody@example.com", "password": "whatever123"}):
        res = client.post("/auth/login", json=body)
        assert res.status_code == 401
        assert res.get_json()["error"]["code"] == "INVALID_CREDENTIALS"


def test_login_validates_its_body(client):
    res = client.post("/auth/login", json={"email": 5})
    body = res.get_json()
    assert res.status_code == 400 and body["error"]["code"] == "VALIDATION_ERROR"
    assert set(body["error"]["details"]["field_errors"]) == {"email", "password"}


def _forge(app, **changes):
    now = datetime.now(timezone.utc)
    claims = {"sub": "1", "sid": "x" * 32, "jti": "j" * 32, "type": "access", "iat": now,
              "exp": now + timedelta(minutes=5)}
    secret = changes.pop("secret", app.config["TOKEN_SECRET"])
    alg = changes.pop("alg", "HS256")
    for key, value in changes.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    return jwt.encode(claims, secret if alg != "none" else None, algorithm=alg)


def test_expired_access_token_is_refused(app, client, make_user, login):
    user = make_user()
    pair = login(user)
    claims = jwt.decode(pair["access_token"], app.config["TOKEN_SECRET"], algorithms=["HS256"])
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    token = _forge(app, sub=claims["sub"], sid=claims["sid"], exp=past, iat=past - timedelta(minutes=15))
    res = _me(client, token)
    assert res.status_code == 401 and res.get_json()["error"]["code"] == "TOKEN_EXPIRED"


def test_tokens_signed_with_another_secret_alg_none_or_missing_claims_are_refused(app, client):
    for token in (_forge(app, secret="another-secret-entirely-32-chars!!"),
                  _forge(app, alg="none"),
                  _forge(app, jti=None),
                  _forge(app, type=None),
                  _forge(app, exp=None)):
        res = _me(client, token)
        assert res.status_code == 401, token
        assert res.get_json()["error"]["code"] == "INVALID_TOKEN"


def test_access_and_refresh_tokens_are_not_interchangeable(client, make_user, login):
    pair = login(make_user())
    assert _me(client, pair["refresh_token"]).status_code == 401
    res = client.post("/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert res.status_code == 401 and res.get_json()["error"]["code"] == "INVALID_TOKEN"


def test_refresh_rotates_and_reuse_revokes_the_whole_login(client, make_user, login):
    pair = login(make_user())
    res = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert res.status_code == 200
    second = res.get_json()
    assert second["refresh_token"] != pair["refresh_token"]
    assert _me(client, second["access_token"]).status_code == 200
    # The old refresh token comes back: someone copied it. The whole chain dies.
    reuse = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reuse.status_code == 401 and reuse.get_json()["error"]["code"] == "TOKEN_REVOKED"
    assert _me(client, second["access_token"]).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401


def test_logout_revokes_access_and_refresh_tokens_but_not_other_logins(client, make_user, login):
    user = make_user()
    first, other = login(user), login(user)
    res = client.post("/auth/logout", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert res.status_code == 204
    assert _me(client, first["access_token"]).get_json()["error"]["code"] == "TOKEN_REVOKED"
    refreshed = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 401
    assert _me(client, other["access_token"]).status_code == 200


def test_revocation_lives_in_the_database_not_redis(app, client, make_user, login):
    from app.extensions import get_redis
    pair = login(make_user())
    client.post("/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"})
    get_redis().flushdb()  # as a Redis restart would
    assert _me(client, pair["access_token"]).status_code == 401


def test_user_routes_refuse_api_keys(client, make_key):
    res = client.get("/auth/me", headers={"X-API-Key": make_key("admin")})
    assert res.status_code == 401 and "not API keys" in res.get_json()["error"]["message"]


def test_login_is_rate_limited_in_the_documented_shape(app, client, make_user):
    make_user()
    app.config["LOGIN_RATE_LIMIT"] = "3/minute"
    codes = [client.post("/auth/login", json={"email": "user@example.com", "password": "bad-password"}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    res = client.post("/auth/login", json={"email": "user@example.com", "password": "bad-password"})
    body = res.get_json()
    assert body["error"]["code"] == "RATE_LIMITED" and body["request_id"].startswith("req_")
    assert int(res.headers["Retry-After"]) > 0
    time.sleep(0)  # the limit is per address and e-mail: another account is not locked out
    other = client.post("/auth/login", json={"email": "other@example.com", "password": "bad-password"})
    assert other.status_code == 401
