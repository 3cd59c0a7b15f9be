"""Webhooks (register, list, remove) and their deliveries (list, inspect, replay a failed one). Admin only."""

from flask import Blueprint, request

from api.context import endpoint, json_body
from fieldpipe import paging
from fieldpipe.webhooks import delivery, registry

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")


@bp.post("/webhooks")
@endpoint(admin=True)
def register_webhook(conn, caller):
    webhook = registry.register_webhook(conn, caller.organization_id, json_body())
    return webhook, 201, {"Location": f"/api/v1/webhooks/{webhook['id']}"}


@bp.get("/webhooks")
@endpoint(admin=True)
def list_webhooks(conn, caller):
    return registry.list_webhooks(conn, caller.organization_id, paging.from_query(request.args, registry.WEBHOOKS))


@bp.delete("/webhooks/<int:webhook_id>")
@endpoint(admin=True)
def delete_webhook(conn, caller, webhook_id):
    registry.delete_webhook(conn, caller.organization_id, webhook_id)
    return "", 204


@bp.get("/deliveries")
@endpoint(admin=True)
def list_deliveries(conn, caller):
    return delivery.list_deliveries(conn, caller.organization_id, paging.from_query(request.args, delivery.DELIVERIES),
                                    request.args.get("status"))


@bp.get("/deliveries/<int:delivery_id>")
@endpoint(admin=True)
def get_delivery(conn, caller, delivery_id):
    return delivery.get_delivery(conn, caller.organization_id, delivery_id)


@bp.post("/deliveries/<int:delivery_id>/retry")
@endpoint(admin=True)
def retry_delivery(conn, caller, delivery_id):
    return delivery.retry_delivery(conn, caller.organization_id, delivery_id)
