import marshmallow as ma

from app import clock
from app.api.base import answer


class LoginSchema(ma.Schema):
    email = ma.fields.String(required=True, validate=ma.validate.Length(max=254))
    password = ma.fields.String(required=True, validate=ma.validate.Length(max=1024))


class RefreshSchema(ma.Schema):
    refresh_token = ma.fields.String(required=True, validate=ma.validate.Length(max=4096))


class LogoutSchema(ma.Schema):
    refresh_token = ma.fields.String(validate=ma.validate.Length(max=4096))


@answer()
class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "access token lifetime, seconds"})


@answer()
class UserSchema(ma.Schema):
    id = ma.fields.Integer()
    email = ma.fields.String()
    name = ma.fields.String()
    is_admin = ma.fields.Boolean()
    created_at = ma.fields.Function(lambda u: clock.iso(u.created_at))
