"""Announcements to parents: SMS templates, the organization's SMS policy, announcements with their progress,
approval, cancellation and recipients (docs/announcements.md)."""

from flask import Blueprint, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.announcements import policy, service, templates

bp = Blueprint("announcements", __name__, url_prefix="/api/v1")


@bp.get("/sms-policy")
@operation("The organization's SMS policy for announcements", returns=schemas.SmsPolicy)
@endpoint()
def get_policy(conn, caller):
    return policy.get_policy(conn, caller.organization_id)


@bp.patch("/sms-policy")
@operation("Change the SMS policy: time zone, quiet hours, daily cap per recipient, DLT registration, default "
           "sender id, approval threshold", body=schemas.SmsPolicyPatch, returns=schemas.SmsPolicy,
           examples={"quiet nights": examples.SMS_POLICY})
@endpoint(admin=True)
def update_policy(conn, caller):
    return policy.update_policy(conn, caller.organization_id, json_body())


@bp.post("/sms-templates")
@operation("Create an SMS template: a kind, bodies per language with the placeholders the kind provides, and the "
           "DLT template id and sender id (required when the SMS policy says so)", body=schemas.SmsTemplateInput,
           returns=schemas.SmsTemplate, status=201, problems=("already-exists",),
           examples={"a holiday in Hindi and English": examples.SMS_TEMPLATE})
@endpoint(admin=True)
def create_template(conn, caller):
    return templates.create_template(conn, caller.organization_id, json_body()), 201


@bp.get("/sms-templates")
@operation("List the organization's SMS templates, oldest first", listing=schemas.SmsTemplate)
@endpoint()
def list_templates(conn, caller):
    return templates.list_templates(conn, caller.organization_id, paging.from_query(request.args, templates.TEMPLATES))


@bp.get("/sms-templates/<int:template_id>")
@operation("Get an SMS template", returns=schemas.SmsTemplate)
@endpoint()
def get_template(conn, caller, template_id):
    return templates.template_body(templates.template_row(conn, caller.organization_id, template_id))


@bp.patch("/sms-templates/<int:template_id>")
@operation("Change an SMS template; announcements already made keep the text they were made with",
           body=schemas.SmsTemplatePatch, returns=schemas.SmsTemplate, problems=("already-exists",),
           examples={"a new English text": examples.SMS_TEMPLATE_PATCH})
@endpoint(admin=True)
def update_template(conn, caller, template_id):
    return templates.update_template(conn, caller.organization_id, template_id, json_body())


@bp.post("/announcements")
@operation("Announce to parents (an admin key, or a teacher's collector key for classes and students): resolves "
           "the audience now and answers its size; the `announcements` DAG sends at `send_at`, after a second "
           "admin's approval when above the policy's threshold", body=schemas.AnnouncementInput,
           returns=schemas.Announcement, status=202, examples={"a holiday to a class": examples.ANNOUNCEMENT},
           headers={"Location": "The announcement's URL, to follow its progress"})
@endpoint()
def create_announcement(conn, caller):
    announcement = service.create_announcement(conn, caller, json_body())
    return announcement, 202, {"Location": f"/api/v1/announcements/{announcement['id']}"}


@bp.get("/announcements")
@operation("List the organization's announcements with their progress, oldest first", listing=schemas.Announcement)
@endpoint()
def list_announcements(conn, caller):
    return service.list_announcements(conn, caller.organization_id,
                                      paging.from_query(request.args, service.ANNOUNCEMENTS))


@bp.get("/announcements/<int:announcement_id>")
@operation("An announcement's status and progress: resolved, queued, sent, delivered, failed, unknown, skipped, "
           "cancelled", returns=schemas.Announcement)
@endpoint()
def get_announcement(conn, caller, announcement_id):
    return service.get_announcement(conn, caller.organization_id, announcement_id)


@bp.post("/announcements/<int:announcement_id>/approve")
@operation("Approve a large announcement: an admin key other than the one that made it", returns=schemas.Announcement,
           problems=("same-approver", "announcement-state"))
@endpoint(admin=True)
def approve_announcement(conn, caller, announcement_id):
    return service.approve(conn, caller, announcement_id)


@bp.post("/announcements/<int:announcement_id>/cancel")
@operation("Cancel an announcement: nothing not yet sent goes out (the key that made it, or an admin key)",
           returns=schemas.Announcement, problems=("forbidden", "announcement-state"))
@endpoint()
def cancel_announcement(conn, caller, announcement_id):
    return service.cancel(conn, caller, announcement_id)


@bp.get("/announcements/<int:announcement_id>/recipients")
@operation("An announcement's recipients with each one's state and reason (skipped, failed, ...)",
           listing=schemas.AnnouncementRecipient,
           query=(Query("status", {"enum": list(service.RECIPIENT_STATUSES)}, "Only recipients in this state"),))
@endpoint(admin=True)
def list_recipients(conn, caller, announcement_id):
    return service.list_recipients(conn, caller.organization_id, announcement_id,
                                   paging.from_query(request.args, service.RECIPIENTS), request.args.get("status"))
