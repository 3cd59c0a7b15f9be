"""The organization's API keys (admin): list them (never the keys themselves) and revoke one."""

from flask import Blueprint, request

from api import schemas
from api.context import endpoint, forget_key
from api.spec import operation
from fieldpipe import orgs, paging

bp = Blueprint("keys", __name__, url_prefix="/api/v1/keys")


@bp.get("")
@operation("List the organization's API keys, revoked ones too (an id and a prefix, never the key)",
           listing=schemas.ApiKey)
@endpoint(admin=True)
def list_keys(conn, caller):
    return orgs.list_keys(conn, caller.organization_id, paging.from_query(request.args, orgs.KEYS))


@bp.post("/<int:key_id>/revoke")
@operation("Revoke a key of the organization", returns=schemas.ApiKey,
           description=f"This API process stops accepting it at once, every other within {orgs.KEY_CACHE_SECONDS} "
                       "seconds (keys are cached that long). Revoking a revoked key keeps the first time.")
@endpoint(admin=True)
def revoke_key(conn, caller, key_id):
    key = orgs.revoke_key(conn, caller.organization_id, key_id)
    forget_key(key_id)
    return key
