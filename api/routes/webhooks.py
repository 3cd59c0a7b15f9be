"""Webhooks (register, list, remove) and their deliveries (list, inspect, replay a failed one). Admin only."""

from flask import Blueprint, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.outbox import replay_filter
from fieldpipe.webhooks import delivery, registry

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")


@bp.post("/webhooks")
@operation("Register a webhook for flag events. The URL is checked now (shape, https in production, a public "
           "resolved address); the answer carries the signing secret, shown only this once",
           body=schemas.WebhookInput, returns=schemas.WebhookCreated, status=201, problems=("unavailable",),
           examples={"flag events": examples.WEBHOOK}, headers={"Location": "The new webhook's URL"})
@endpoint(admin=True)
def register_webhook(conn, caller):
    webhook = registry.register_webhook(conn, caller.organization_id, json_body())
    return webhook, 201, {"Location": f"/api/v1/webhooks/{webhook['id']}"}


@bp.get("/webhooks")
@operation("List the organization's webhooks (without secrets), with each endpoint's circuit state",
           listing=schemas.Webhook)
@endpoint(admin=True)
def list_webhooks(conn, caller):
    return registry.list_webhooks(conn, caller.organization_id, paging.from_query(request.args, registry.WEBHOOKS))


@bp.delete("/webhooks/<int:webhook_id>")
@operation("Remove a webhook; its queued deliveries are cancelled, past ones stay listed", status=204)
@endpoint(admin=True)
def delete_webhook(conn, caller, webhook_id):
    registry.delete_webhook(conn, caller.organization_id, webhook_id)
    return "", 204


@bp.get("/deliveries")
@operation("List webhook deliveries, newest first", listing=schemas.Delivery,
           query=(Query("status", {"enum": list(delivery.STATUSES)}, "Only deliveries in this state"),))
@endpoint(admin=True)
def list_deliveries(conn, caller):
    return delivery.list_deliveries(conn, caller.organization_id, paging.from_query(request.args, delivery.DELIVERIES),
                                    request.args.get("status"))


@bp.get("/deliveries/<int:delivery_id>")
@operation("One delivery with the exact body sent and every attempt", returns=schemas.Delivery)
@endpoint(admin=True)
def get_delivery(conn, caller, delivery_id):
    return delivery.get_delivery(conn, caller.organization_id, delivery_id)


@bp.post("/deliveries/retry")
@operation("Retry all: put every failed delivery of the organization (last changed at or after `since`, of event "
           "`kind`) back in the queue with a fresh retry window, in one statement; answers how many",
           returns=schemas.Requeued,
           query=(Query("status", {"enum": ["failed"], "default": "failed"}, "Only failed deliveries can be retried"),
                  Query("since", {"type": "string", "format": "date-time"}, "Only deliveries that failed at or after this"),
                  Query("kind", {"enum": list(registry.EVENTS)}, "Only deliveries of this event")))
@endpoint(admin=True)
def retry_deliveries(conn, caller):
    replay = replay_filter(request.args, ("failed",))
    return {"requeued": len(delivery.requeue_failed(conn, organization_id=caller.organization_id, replay=replay))}


@bp.post("/deliveries/<int:delivery_id>/retry")
@operation("Put a failed delivery back in the queue with a fresh retry window", returns=schemas.Delivery,
           problems=("not-retryable",))
@endpoint(admin=True)
def retry_delivery(conn, caller, delivery_id):
    return delivery.retry_delivery(conn, caller.organization_id, delivery_id)
