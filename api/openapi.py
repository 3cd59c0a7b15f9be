"""The OpenAPI 3.1 description of the API. A test checks that every route under /api/v1 is described here."""

from __future__ import annotations

from fieldpipe.answers import QUESTION_TYPES
from fieldpipe.imports.template import MIMETYPES as TEMPLATE_MIMETYPES

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _op(summary: str, *, admin: bool = False, body: str | None = None, params: list | None = None,
        ok: tuple[str, str] = ("200", "OK"), schema: str | None = None, errors: tuple[str, ...] = ()) -> dict:
    op: dict = {"summary": summary, "security": [{"apiKey": []}], "parameters": params or []}
    if admin:
        op["description"] = "Needs an admin key."
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}} if schema else {"application/json": {}}
    op["responses"] = {ok[0]: {"description": ok[1], "content": content}}
    for code in ("401", "403" if admin else None, "404", *errors):
        if code:
            op["responses"][code] = PROBLEM
    return op


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _query(name: str, description: str, type_: str = "string") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": type_}, "description": description}


SLUG = _path_param("slug", "The form's slug")
SUBMISSION = _path_param("submission_id", "The UUID the device gave the submission")

PATHS: dict[str, dict] = {
    "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "OK"}}}},
    "/readyz": {"get": {"summary": "The database is reachable", "security": [],
                        "responses": {"200": {"description": "Ready"}, "503": PROBLEM}}},
    "/api/v1/forms": {
        "get": _op("List the organization's forms"),
        "post": _op("Create a form from JSON, or upload an XLSForm (.xlsx/.xls) or XForm (.xml) as the multipart "
                    "part `file` (optional parts slug, title, settings); pyxform's message is the 422 for a bad "
                    "XLSForm", admin=True, body="FormInput", ok=("201", "Created"), schema="Form",
                    errors=("400", "409", "422")),
    },
    "/api/v1/forms/{slug}": {
        "get": _op("Get a form with its current questions", params=[SLUG], schema="Form"),
        "put": _op("Update a form; changed questions make a new version", admin=True, params=[SLUG], body="FormInput",
                   schema="Form", errors=("400", "422")),
    },
    "/api/v1/forms/{slug}/responses": {
        "post": _op("Post one submission. 201 when new, 200 when the same submission was already received",
                    params=[SLUG], body="Submission", ok=("201", "Created"), schema="Response",
                    errors=("400", "409", "413", "422")),
        "get": _op("Page through responses (keyset), filter by received time, choice answers and words",
                   params=[SLUG, _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page"),
                           _query("since", "Only responses received at or after this ISO 8601 time"),
                           _query("answer.{key}", "Equality on a choice or boolean answer, e.g. answer.city=Pune"),
                           _query("q", "Words that must all appear in the text answers")],
                   schema="ResponsePage", errors=("422",)),
    },
    "/api/v1/forms/{slug}/responses/batch": {
        "post": _op("Post up to 1,000 submissions; each is judged on its own", params=[SLUG], body="Batch",
                    schema="BatchResult", errors=("400", "413", "422")),
    },
    "/api/v1/forms/{slug}/responses/{submission_id}": {
        "get": _op("Get a response", params=[SLUG, SUBMISSION], schema="Response"),
        "put": _op("Edit a response: a new revision, earlier ones kept", params=[SLUG, SUBMISSION], body="Edit",
                   schema="Response", errors=("400", "422")),
    },
    "/api/v1/forms/{slug}/responses/{submission_id}/revisions": {
        "get": _op("Every revision of a response, oldest first", params=[SLUG, SUBMISSION]),
    },
    "/api/v1/forms/{slug}/responses/{submission_id}/attachments": {
        "get": _op("The files the response's answers name (image, audio, video, file), and whether each arrived",
                   params=[SLUG, SUBMISSION]),
    },
    "/api/v1/forms/{slug}/responses/{submission_id}/attachments/{name}": {
        "get": _op("Download one attached file, streamed from object storage", params=[
            SLUG, SUBMISSION, _path_param("name", "The file's name as the device sent it")]),
    },
    "/api/v1/forms/{slug}/flags": {
        "get": _op("Flags the form's business rules raised (docs/rules.md), oldest first",
                   params=[SLUG, _query("status", "open (default), closed or all"),
                           _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")],
                   schema="FlagPage", errors=("422",)),
    },
    "/api/v1/webhooks": {
        "post": _op("Register a webhook for flag events. The URL is checked now (shape, https in production, "
                    "a public resolved address); the answer carries the signing secret, shown only this once",
                    admin=True, body="WebhookInput", ok=("201", "Created"), schema="WebhookCreated",
                    errors=("400", "422")),
        "get": _op("List the organization's webhooks (without secrets), with each endpoint's circuit state",
                   admin=True),
    },
    "/api/v1/webhooks/{webhook_id}": {
        "delete": _op("Remove a webhook; its queued deliveries are cancelled, past ones stay listed", admin=True,
                      params=[_path_param("webhook_id", "The webhook's id")], ok=("204", "Removed")),
    },
    "/api/v1/deliveries": {
        "get": _op("List webhook deliveries, newest first", admin=True,
                   params=[_query("status", "queued, sending, delivered, failed or cancelled"),
                           _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")],
                   schema="DeliveryList", errors=("422",)),
    },
    "/api/v1/deliveries/{delivery_id}": {
        "get": _op("One delivery with its body and every attempt (time, status code, error, duration)", admin=True,
                   params=[_path_param("delivery_id", "The delivery's id")], schema="Delivery"),
    },
    "/api/v1/deliveries/{delivery_id}/retry": {
        "post": _op("Put a failed delivery back in the queue with a fresh 24 h retry window", admin=True,
                    params=[_path_param("delivery_id", "The delivery's id")], schema="Delivery", errors=("409",)),
    },
    "/api/v1/messages": {
        "get": _op("List the organization's SMS messages, oldest first", admin=True,
                   params=[_query("status", "queued, sending, sent, failed or unknown"),
                           _query("kind", "receipt, flag, announcement, ..."),
                           _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")],
                   schema="MessagePage", errors=("422",)),
    },
    "/api/v1/messages/{message_id}": {
        "get": _op("One SMS message with every attempt", admin=True,
                   params=[_path_param("message_id", "The message's id")], schema="Message"),
    },
    "/api/v1/messages/{message_id}/retry": {
        "post": _op("Queue an unknown or failed message again (an unknown one may then arrive twice; see docs/sms.md)",
                    admin=True, params=[_path_param("message_id", "The message's id")], schema="Message",
                    errors=("409",)),
    },
    "/api/v1/messages/{message_id}/resend": {
        "post": _op("The earlier name of POST /api/v1/messages/{message_id}/retry", admin=True,
                    params=[_path_param("message_id", "The message's id")], schema="Message", errors=("409",)),
    },
}

SCHEMAS: dict[str, dict] = {
    "Question": {
        "type": "object", "required": ["key", "type"],
        "properties": {
            "key": {"type": "string", "description": "^[a-z][a-z0-9_]{0,62}$ for JSON forms; an XForm's element "
                                                     "path below the root (groups flattened, 'group/name')"},
            "label": {"type": "string"},
            "type": {"enum": list(QUESTION_TYPES)},
            "questions": {"type": "array", "items": {"$ref": "#/components/schemas/Question"},
                          "description": "A repeat's own questions; its answer is a list of objects"},
            "required": {"type": "boolean"},
            "mask": {"type": "boolean", "description": "Masked in exports"},
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "value": {"type": "string"}, "label": {"type": "string"}}}},
        },
    },
    "FormInput": {
        "type": "object",
        "properties": {
            "slug": {"type": "string"}, "title": {"type": "string"},
            "questions": {"type": "array", "items": {"$ref": "#/components/schemas/Question"}},
            "settings": {"type": "object", "description": "sms_receipt {phone_question, template}; sheet {spreadsheet_id, worksheet}"},
        },
    },
    "Form": {"allOf": [{"$ref": "#/components/schemas/FormInput"},
                       {"type": "object", "properties": {"version": {"type": "integer"}}}]},
    "Submission": {
        "type": "object", "required": ["submission_id", "submitted_at", "collector", "answers"],
        "properties": {
            "submission_id": {"type": "string", "format": "uuid"},
            "submitted_at": {"type": "string", "format": "date-time"},
            "form_version": {"type": "integer", "description": "Defaults to the form's current version"},
            "collector": {"type": "object", "required": ["id"],
                          "properties": {"id": {"type": "string"}, "phone": {"type": "string", "description": "E.164"}}},
            "answers": {"type": "object", "additionalProperties": True},
        },
    },
    "Edit": {"type": "object", "required": ["answers"], "properties": {
        "answers": {"type": "object"}, "form_version": {"type": "integer"},
        "submitted_at": {"type": "string", "format": "date-time"}, "collector": {"type": "object"}}},
    "Response": {"allOf": [{"$ref": "#/components/schemas/Submission"}, {"type": "object", "properties": {
        "form": {"type": "string"}, "revision": {"type": "integer"},
        "received_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/RuleWarning"},
                     "description": "On POST and PUT: the business rules these answers break (stored anyway)"},
        "flags": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"},
                  "description": "On GET: the response's open flags"}}}]},
    "ResponsePage": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Response"}},
        "next_cursor": {"type": ["string", "null"]}}},
    "Batch": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/Submission"}}}},
    "BatchResult": {"type": "object", "properties": {
        "summary": {"type": "object", "properties": {k: {"type": "integer"} for k in ("created", "duplicate", "conflict", "invalid")}},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "submission_id": {"type": ["string", "null"]},
            "status": {"enum": ["created", "duplicate", "conflict", "invalid"]},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
            "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/RuleWarning"}}}}}}},
    "RuleWarning": {"type": "object", "properties": {
        "rule_id": {"type": "string"}, "severity": {"enum": ["error", "warning"]}, "message": {"type": "string"}}},
    "Flag": {"type": "object", "properties": {
        "id": {"type": "integer"}, "submission_id": {"type": "string", "format": "uuid"},
        "revision": {"type": "integer"}, "rule_id": {"type": "string"}, "severity": {"enum": ["error", "warning"]},
        "rules_version": {"type": ["integer", "null"], "description": "The rules version that raised the flag"},
        "notify": {"enum": ["collector", "none"]}, "message": {"type": "string"},
        "status": {"enum": ["open", "closed"]},
        "close_reason": {"enum": ["passed", "superseded", "rule_removed", None]},
        "opened_at": {"type": "string", "format": "date-time"},
        "closed_at": {"type": ["string", "null"], "format": "date-time"}}},
    "FlagPage": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"}},
        "next_cursor": {"type": ["string", "null"]}}},
    "WebhookInput": {"type": "object", "required": ["url", "events"], "properties": {
        "url": {"type": "string", "format": "uri", "description": "http(s) URL; https in production"},
        "events": {"type": "array", "minItems": 1, "items": {"enum": ["flag.opened", "flag.resolved"]}}}},
    "Webhook": {"type": "object", "properties": {
        "id": {"type": "integer"}, "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "circuit": {"type": "object", "properties": {"consecutive_failures": {"type": "integer"},
                                                     "open_until": {"type": ["string", "null"], "format": "date-time"}}}}},
    "WebhookCreated": {"allOf": [{"$ref": "#/components/schemas/Webhook"}, {"type": "object", "properties": {
        "secret": {"type": "string", "description": "HMAC-SHA256 signing secret (whsec_...); shown only here"}}}]},
    "Delivery": {"type": "object", "properties": {
        "id": {"type": "integer"}, "webhook_id": {"type": "integer"}, "url": {"type": "string"},
        "event": {"enum": ["flag.opened", "flag.resolved"]}, "event_key": {"type": "string"},
        "status": {"enum": ["queued", "sending", "delivered", "failed", "cancelled"]},
        "attempts": {"type": "integer"}, "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]}, "next_attempt_at": {"type": "string", "format": "date-time"},
        "give_up_at": {"type": "string", "format": "date-time"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "body": {"type": "string", "description": "The exact JSON sent (single delivery only)"},
        "attempt_log": {"type": "array", "items": {"type": "object", "properties": {
            "attempt": {"type": "integer"}, "started_at": {"type": "string", "format": "date-time"},
            "duration_ms": {"type": "integer"}, "status_code": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]}, "outcome": {"enum": ["delivered", "retry", "failed"]}}}}}},
    "DeliveryList": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}}},
    "FieldError": {"type": "object", "properties": {
        "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}},
    "Problem": {"type": "object", "description": "RFC 9457 problem details", "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable code such as 409.1"}, "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}}},
    "Message": {"type": "object", "properties": {
        "id": {"type": "integer"}, "dedupe_key": {"type": "string"}, "kind": {"type": "string"},
        "recipient": {"type": "string", "description": "E.164"}, "body": {"type": "string"},
        "template": {"type": ["string", "null"]}, "encoding": {"enum": ["GSM-7", "UCS-2"]},
        "segments": {"type": "integer"},
        "status": {"enum": ["queued", "sending", "sent", "failed", "unknown"]},
        "attempts": {"type": "integer"}, "next_attempt_at": {"type": "string", "format": "date-time"},
        "provider": {"type": ["string", "null"]}, "provider_message_id": {"type": ["string", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "history": {"type": "array", "description": "Only on GET /api/v1/messages/{message_id}",
                    "items": {"type": "object", "properties": {
                        "attempt": {"type": "integer"}, "provider": {"type": ["string", "null"]},
                        "outcome": {"enum": ["sent", "retry", "failed", "unknown", "resend"]},
                        "http_status": {"type": ["integer", "null"]}, "error_code": {"type": ["string", "null"]},
                        "error": {"type": ["string", "null"]}, "retry_after_s": {"type": ["number", "null"]},
                        "created_at": {"type": "string", "format": "date-time"}}}}}},
    "MessagePage": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "next_cursor": {"type": ["string", "null"]}}},
}

ASSESSMENT = _path_param("assessment_id", "The assessment's id")
UDISE = _path_param("udise", "The school's 11-digit UDISE code")
CLASS = _path_param("class_id", "The class's id")
SUBMISSION_ERRORS = ("400", "409", "413", "422")

# School assessments (issue 8): rosters, assessments, submissions and daily summaries.
ASSESSMENT_PATHS: dict[str, dict] = {
    "/api/v1/schools": {
        "post": _op("Create a school", admin=True, body="School", ok=("201", "Created"), schema="School",
                    errors=("400", "409", "422")),
        "get": _op("List the organization's schools"),
    },
    "/api/v1/schools/{udise}": {"get": _op("Get a school", params=[UDISE], schema="School")},
    "/api/v1/schools/{udise}/classes": {
        "post": _op("Create a class (grade 1-12, section)", admin=True, params=[UDISE], ok=("201", "Created"),
                    errors=("400", "409", "422")),
        "get": _op("List a school's classes", params=[UDISE]),
    },
    "/api/v1/classes/{class_id}/students": {
        "post": _op("Import students, all or nothing: JSON {students: [{roll_number, name, parent_phone, guardians}]} "
                    "or a text/csv body with those columns (one guardian per row as guardian_name, guardian_relation, "
                    "guardian_phone, guardian_language, guardian_opted_out); existing roll numbers are updated (and "
                    "re-enrolled); listed guardians replace the student's",
                    admin=True, params=[CLASS], body="StudentImport", errors=("400", "413", "415", "422")),
        "get": _op("List a class's students", params=[CLASS, _query("include_deleted", "true to list those who left")]),
    },
    "/api/v1/students/{student_id}": {
        "delete": _op("Mark a student as having left; later marks for them are rejected", admin=True,
                      params=[_path_param("student_id", "The student's id")]),
    },
    "/api/v1/subjects": {
        "post": _op("Create a subject {code, name}", admin=True, ok=("201", "Created"), errors=("400", "409", "422")),
        "get": _op("List subjects"),
    },
    "/api/v1/assessments": {
        "post": _op("Create an assessment. Supported: Grade or Marks evaluation with the TSP outcome for every type "
                    "(LO, Unit, Question, None); other combinations are a 422 whose `supported` member lists them",
                    admin=True, body="AssessmentInput", ok=("201", "Created"), schema="Assessment",
                    errors=("400", "422")),
        "get": _op("Assessments open for a school's classes (all of the organization's without `school`), with "
                   "each class's submission count. Send the ETag back as If-None-Match: 304 while nothing changed",
                   params=[_query("school", "UDISE code")]),
    },
    "/api/v1/assessments/{assessment_id}": {
        "get": _op("Get an assessment (answer keys for admin keys only)", params=[ASSESSMENT], schema="Assessment"),
        "patch": _op("Change title, deadline, class_ids or sheet", admin=True, params=[ASSESSMENT], schema="Assessment",
                     errors=("400", "422")),
    },
    "/api/v1/assessments/{assessment_id}/submissions/student": {
        "post": _op("Marks (or grades) per student per item for one class, with is_present; 201 when new, 200 for a "
                    "repeat of the same submission_id and content, 409 for different content, 422 listing every bad entry",
                    params=[ASSESSMENT], body="StudentSubmission", ok=("201", "Created"), schema="SubmissionReceipt",
                    errors=SUBMISSION_ERRORS),
    },
    "/api/v1/assessments/{assessment_id}/submissions/class": {
        "post": _op("Students present and cleared per item for one class (class-level assessments)", params=[ASSESSMENT],
                    body="ClassSubmission", ok=("201", "Created"), schema="SubmissionReceipt", errors=SUBMISSION_ERRORS),
    },
    "/api/v1/assessments/{assessment_id}/answers": {
        "post": _op("A batch of exam answers for one class, stored as they come and graded by the "
                    "aggregate_assessments DAG", params=[ASSESSMENT], body="ExamAnswers", ok=("201", "Created"),
                    schema="SubmissionReceipt", errors=SUBMISSION_ERRORS),
    },
    "/api/v1/assessments/{assessment_id}/summary": {
        "get": _op("The daily summary (students assessed, present, passing, mean and median marks, grades) per item",
                   params=[ASSESSMENT, _query("level", "class (default), school, block or district"),
                           _query("date", "YYYY-MM-DD; default the latest computed day")], errors=("422",)),
    },
}

_SUBMISSION_ENVELOPE = {
    "submission_id": {"type": "string", "format": "uuid"}, "class_id": {"type": "integer"},
    "submitted_at": {"type": "string", "format": "date-time"},
    "collector": {"type": "object", "properties": {"id": {"type": "string"}}},
}
ASSESSMENT_SCHEMAS: dict[str, dict] = {
    "School": {"type": "object", "required": ["udise", "name", "district", "block"], "properties": {
        "udise": {"type": "string", "pattern": "^[0-9]{11}$"}, "name": {"type": "string"},
        "district": {"type": "string"}, "block": {"type": "string"}}},
    "StudentImport": {"type": "object", "properties": {"students": {"type": "array", "maxItems": 5000, "items": {
        "type": "object", "required": ["roll_number", "name"], "properties": {
            "roll_number": {"type": "string"}, "name": {"type": "string"},
            "parent_phone": {"type": "string", "description": "E.164"},
            "guardians": {"type": "array", "maxItems": 4, "items": {"type": "object"},
                          "description": "As in EnrollmentInput; phones optional here"}}}}}},
    "AssessmentInput": {"type": "object", "required": ["title", "type", "evaluation", "outcome", "items",
                                                       "pass_criterion", "class_ids"], "properties": {
        "title": {"type": "string"}, "subject": {"type": "string"},
        "type": {"enum": ["LO", "Unit", "Question", "None"]},
        "evaluation": {"enum": ["Grade", "Marks", "Percentage", "None"]},
        "outcome": {"enum": ["TSP", "Boolean", "Marks"]},
        "level": {"enum": ["student", "class", "exam"], "description": "Who submits: per student (default), per class, "
                                                                        "or exam answers (Question/Marks only)"},
        "items": {"type": "array", "items": {"type": "object", "required": ["key", "max_marks"], "properties": {
            "key": {"type": "string"}, "label": {"type": "string"}, "max_marks": {"type": "number"},
            "choices": {"type": "array", "items": {"type": "string"}}, "answer_key": {"type": "string"}}}},
        "grade_scale": {"type": "array", "items": {"type": "object", "properties": {
            "grade": {"type": "string"}, "min_percent": {"type": "number"}}}, "description": "Best grade first"},
        "pass_criterion": {"type": "object", "description": "{min_percent} for Marks, {min_grade} for Grade"},
        "class_ids": {"type": "array", "items": {"type": "integer"}},
        "deadline": {"type": "string", "format": "date-time"},
        "sheet": {"type": "object", "properties": {"spreadsheet_id": {"type": "string"}}}}},
    "Assessment": {"allOf": [{"$ref": "#/components/schemas/AssessmentInput"}, {"type": "object", "properties": {
        "id": {"type": "integer"}, "updated_at": {"type": "string", "format": "date-time"}}}]},
    "StudentSubmission": {"type": "object", "properties": {**_SUBMISSION_ENVELOPE, "entries": {"type": "array", "items": {
        "type": "object", "required": ["student_id", "is_present"], "properties": {
            "student_id": {"type": "integer"}, "is_present": {"type": "boolean"},
            "marks": {"type": "object", "additionalProperties": {"type": "number"}},
            "grades": {"type": "object", "additionalProperties": {"type": "string"}}}}}}},
    "ClassSubmission": {"type": "object", "properties": {**_SUBMISSION_ENVELOPE, "results": {"type": "array", "items": {
        "type": "object", "properties": {"item": {"type": "string"}, "present": {"type": "integer"},
                                         "cleared": {"type": "integer"}}}}}},
    "ExamAnswers": {"type": "object", "properties": {**_SUBMISSION_ENVELOPE, "answers": {"type": "array", "items": {
        "type": "object", "properties": {"student_id": {"type": "integer"}, "question": {"type": "string"},
                                         "answer": {"type": "string"}}}}}},
    "SubmissionReceipt": {"type": "object", "properties": {
        "submission_id": {"type": "string"}, "assessment_id": {"type": "integer"}, "class_id": {"type": "integer"},
        "kind": {"enum": ["student", "class", "exam"]}, "entries": {"type": "integer"},
        "submitted_at": {"type": "string", "format": "date-time"}, "received_at": {"type": "string", "format": "date-time"}}},
}
# Bulk imports (docs/imports.md): files of responses, uploaded here or dropped in object storage.
IMPORT_ID = _path_param("import_id", "The import's id, from the 202 of the upload")
_upload = _op("Upload a CSV or XLSX file of responses; the import_responses DAG runs it. 202 with the import",
              admin=True, params=[SLUG], ok=("202", "Accepted: queued"), schema="Import", errors=("409", "413", "422"))
_upload["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "A .csv (UTF-8) or .xlsx file"}}}}}}
_template = _op("A blank file with the form's columns: keys, then note rows with labels and what each takes",
                params=[SLUG, _query("format", "csv (default) or xlsx")], errors=("422",))
_template["responses"]["200"]["content"] = {"text/csv": {}, TEMPLATE_MIMETYPES["xlsx"]: {}}
PATHS.update({
    "/api/v1/forms/{slug}/imports": {
        "post": _upload,
        "get": _op("The form's imports, oldest first, with their status and counts",
                   params=[SLUG, _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")], errors=("422",)),
    },
    "/api/v1/forms/{slug}/imports/template": {"get": _template},
    "/api/v1/forms/{slug}/imports/{import_id}": {
        "get": _op("An import's report: status, counts and each invalid row's number, column and reason",
                   params=[SLUG, IMPORT_ID], schema="Import"),
    },
})
_count = {"type": "integer", "minimum": 0}
SCHEMAS["Import"] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"}, "organization": {"type": "string"}, "form": {"type": "string"},
        "file": {"type": "string"}, "source": {"enum": ["upload", "s3"]},
        "status": {"enum": ["queued", "running", "done", "failed"]},
        "code": {"type": ["string", "null"], "description": "Why the whole file was refused, e.g. unknown_column"},
        "reason": {"type": ["string", "null"]},
        "rows": _count, "created": _count, "duplicate": _count, "conflict": _count, "invalid": _count,
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "row": {"type": "integer"}, "column": {"type": "string"}, "code": {"type": "string"},
            "reason": {"type": "string"}}}},
        "errors_truncated": {"type": "boolean", "description": "The first 1,000 errors are shown; the S3 report has all"},
        "object_key": {"type": "string"}, "report_key": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


ASSESSMENT_PATHS["/api/v1/assessments"]["get"]["responses"]["304"] = {
    "description": "Not modified: the ETag sent in If-None-Match still matches"}
PATHS.update(ASSESSMENT_PATHS)
SCHEMAS.update(ASSESSMENT_SCHEMAS)


# --- business rules per form (docs/rules.md) ---
RULE_VERSION_PARAM = _path_param("version", "A rules version number")
RULES_PATHS: dict[str, dict] = {
    "/api/v1/forms/{slug}/rules": {
        "get": _op("The form's rules in force (version null when it has none)", admin=True, params=[SLUG],
                   schema="RulesVersion"),
        "put": _op("Replace the form's rules: checked against its questions (422 lists every problem with its rule "
                   "id; nothing is stored), then saved as a new version (201). The same document again changes "
                   "nothing (200). Validation applies it to every response on its next run", admin=True,
                   params=[SLUG], body="RulesDocument", ok=("201", "New version"), schema="RulesVersion",
                   errors=("400", "415", "422")),
    },
    "/api/v1/forms/{slug}/rules/versions": {
        "get": _op("The form's rules versions, newest first, with who saved each and when", admin=True,
                   params=[SLUG, _query("limit", "Page size, 1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")],
                   schema="RulesVersionPage", errors=("422",)),
    },
    "/api/v1/forms/{slug}/rules/versions/{version}": {
        "get": _op("One rules version's document", admin=True, params=[SLUG, RULE_VERSION_PARAM],
                   schema="RulesVersion"),
    },
    "/api/v1/forms/{slug}/rules/dry-run": {
        "post": _op("Evaluate a proposed rules document against the form's stored responses (or the latest N) "
                    "without writing flags. Over FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT responses (default 100,000) "
                    "it runs as a job: 202 with a link to poll", admin=True,
                    params=[SLUG, _query("latest", "Only the latest N responses received", "integer")],
                    body="RulesDocument", schema="DryRunResult", errors=("400", "415", "422")),
    },
    "/api/v1/forms/{slug}/rules/dry-runs/{job_id}": {
        "get": _op("A dry run job: queued, running, done (with its result) or failed (with the error)", admin=True,
                   params=[SLUG, _path_param("job_id", "The job's id")], schema="DryRunJob"),
    },
}
RULES_PATHS["/api/v1/forms/{slug}/rules"]["put"]["responses"]["200"] = {
    "description": "Unchanged: the document equals the version in force",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RulesVersion"}}}}
RULES_PATHS["/api/v1/forms/{slug}/rules/dry-run"]["post"]["responses"]["202"] = {
    "description": "Accepted as a job; poll the Location",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DryRunJob"}}}}
RULES_SCHEMAS: dict[str, dict] = {
    "RulesDocument": {"type": "object", "description": "The JSON form of a rules file (docs/rules.md)", "properties": {
        "rules": {"type": "array", "items": {"type": "object", "required": ["id", "expression", "message"], "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "expression": {"type": "string"},
            "message": {"type": "string"}, "severity": {"enum": ["error", "warning"]},
            "notify": {"enum": ["collector", "none"]}, "description": {"type": "string"}}}},
        "expectations": {"type": "array", "items": {"type": "object", "required": ["id", "expectation", "kwargs", "message"],
                                                    "properties": {
            "id": {"type": "string"}, "expectation": {"type": "string"}, "kwargs": {"type": "object"},
            "message": {"type": "string"}, "severity": {"enum": ["error", "warning"]},
            "notify": {"enum": ["collector", "none"]}, "description": {"type": "string"}}}}}},
    "RulesVersion": {"allOf": [{"$ref": "#/components/schemas/RulesDocument"}, {"type": "object", "properties": {
        "version": {"type": ["integer", "null"]}, "created_at": {"type": ["string", "null"], "format": "date-time"},
        "created_by": {"type": ["string", "null"]}}}]},
    "RulesVersionPage": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": "string"}, "rules": {"type": "integer"}, "expectations": {"type": "integer"},
            "in_force": {"type": "boolean"}}}},
        "next_cursor": {"type": ["string", "null"]}}},
    "DryRunResult": {"type": "object", "properties": {
        "responses_evaluated": {"type": "integer"},
        "rules": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "would_flag": {"type": ["integer", "null"]},
            "examples": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            "error": {"type": "string", "description": "Only for a rule that fails in PostgreSQL"}}}}}},
    "DryRunJob": {"type": "object", "properties": {
        "id": {"type": "integer"}, "status": {"enum": ["queued", "running", "done", "failed"]},
        "latest": {"type": ["integer", "null"]}, "poll": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"}, "created_by": {"type": "string"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"}, "error": {"type": ["string", "null"]},
        "result": {"oneOf": [{"$ref": "#/components/schemas/DryRunResult"}, {"type": "null"}]}}},
}
PATHS.update(RULES_PATHS)
SCHEMAS.update(RULES_SCHEMAS)

# Enrollment, leaving certificates and transfers (issue 19).
STUDENT = _path_param("student_id", "The student's id")
CERTIFICATE = _path_param("certificate_id", "The certificate's id (UUID)")
ENROLLMENT_PATHS: dict[str, dict] = {
    "/api/v1/enrollments": {
        "post": _op("Enroll a student: new (409 duplicate-student with `existing_student` when the same name, date of "
                    "birth and a guardian phone are already registered), a transfer within the state by "
                    "`slc_qr_payload` (same student id; a certificate is used once), or from another state with "
                    "`out_of_state` document details (waits for review)", admin=True, body="EnrollmentInput",
                    ok=("201", "Created"), schema="Student", errors=("400", "409", "415", "422")),
    },
    "/api/v1/students/{student_id}/leave": {
        "post": _op("End the student's enrollment on `date` and issue a signed school leaving certificate (PDF with "
                    "a QR code); answers {student, slc: {id, qr_payload, pdf_url, ...}}", admin=True,
                    params=[STUDENT], body="LeaveInput", ok=("201", "Created"), errors=("400", "409", "422")),
    },
    "/api/v1/slc/verify": {
        "post": _op("Check a certificate's QR payload: {valid, reason, kid, certificate}; reason is malformed, "
                    "unknown-key, bad-signature, key-revoked, unknown-certificate, certificate-revoked or already-used",
                    body="VerifyInput", errors=("400", "422")),
    },
    "/api/v1/slc/{certificate_id}": {"get": _op("A certificate with its QR payload and status", params=[CERTIFICATE])},
    "/api/v1/slc/{certificate_id}/pdf": {"get": _op("The certificate's PDF (English and Hindi)", params=[CERTIFICATE])},
    "/api/v1/slc/{certificate_id}/revoke": {
        "post": _op("Revoke a certificate issued in error: it no longer verifies", admin=True, params=[CERTIFICATE]),
    },
    "/api/v1/slc-keys": {"get": _op("The organization's certificate signing keys (public halves) and status", admin=True)},
    "/api/v1/slc-keys/rotate": {
        "post": _op("Make a new signing key; the old one is retired (its certificates still verify)", admin=True,
                    ok=("201", "Created")),
    },
    "/api/v1/slc-keys/{kid}/revoke": {
        "post": _op("Revoke a signing key: every certificate it signed is refused from now on", admin=True,
                    params=[_path_param("kid", "The key id")]),
    },
    "/api/v1/transfers": {
        "get": _op("Transfers from other states and their review status", admin=True,
                   params=[_query("status", "pending, accepted or rejected")], errors=("422",)),
    },
    "/api/v1/transfers/{transfer_id}/review": {
        "post": _op("Accept or reject a transfer from another state: {decision, note}", admin=True,
                    params=[_path_param("transfer_id", "The transfer's id")], errors=("400", "409", "422")),
    },
    "/api/v1/audit": {
        "get": _op("The audit log: who (which API key) enrolled, transferred, issued or revoked what", admin=True,
                   params=[_query("subject", "e.g. student:12"), _query("limit", "1-1000 (default 100)", "integer"),
                           _query("cursor", "next_cursor of the previous page")], errors=("422",)),
    },
}
ENROLLMENT_PATHS["/api/v1/students/{student_id}"] = {
    **PATHS["/api/v1/students/{student_id}"],
    "get": _op("A student with guardians, every enrollment period (school, class, from, to) and certificates",
               params=[STUDENT], schema="Student"),
}
_GUARDIAN = {"type": "object", "required": ["name", "relation"], "properties": {
    "name": {"type": "string"}, "relation": {"enum": ["mother", "father", "grandmother", "grandfather", "sibling",
                                                      "guardian", "other"]},
    "phone": {"type": ["string", "null"], "description": "Normalised to E.164"},
    "preferred_language": {"type": "string", "pattern": "^[a-z]{2}$", "default": "hi"},
    "opted_out": {"type": "boolean", "default": False}}}
ENROLLMENT_SCHEMAS: dict[str, dict] = {
    "EnrollmentInput": {"type": "object", "required": ["class_id"], "properties": {
        "class_id": {"type": "integer"}, "name": {"type": "string"}, "date_of_birth": {"type": "string", "format": "date"},
        "gender": {"enum": ["female", "male", "other"]},
        "guardians": {"type": "array", "minItems": 1, "maxItems": 4, "items": _GUARDIAN},
        "admission_number": {"type": "string"}, "previous_school": {"type": "string"},
        "roll_number": {"type": "string", "description": "Default: the next number in the class"},
        "admitted_on": {"type": "string", "format": "date", "description": "Default: today"},
        "slc_qr_payload": {"type": "string", "description": "Transfer within the state: the certificate's QR text"},
        "out_of_state": {"type": "object", "required": ["state", "school_name", "certificate_number", "issued_on"],
                         "properties": {"state": {"type": "string"}, "school_name": {"type": "string"},
                                        "certificate_number": {"type": "string"},
                                        "issued_on": {"type": "string", "format": "date"},
                                        "document_url": {"type": "string", "format": "uri"}}}}},
    "Student": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "date_of_birth": {"type": "string", "format": "date"},
        "gender": {"type": "string"}, "admission_number": {"type": ["string", "null"]},
        "status": {"enum": ["enrolled", "left"]}, "class_id": {"type": ["integer", "null"]},
        "school": {"type": ["string", "null"]}, "guardians": {"type": "array", "items": _GUARDIAN},
        "enrollments": {"type": "array", "items": {"type": "object", "properties": {
            "school": {"type": "string"}, "class_id": {"type": "integer"}, "from": {"type": "string", "format": "date"},
            "to": {"type": ["string", "null"], "format": "date"}, "started_by": {"type": "string"}}}},
        "certificates": {"type": "array", "items": {"type": "object"}}}},
    "LeaveInput": {"type": "object", "required": ["reason", "date"], "properties": {
        "reason": {"type": "string"}, "date": {"type": "string", "format": "date"}}},
    "VerifyInput": {"type": "object", "required": ["qr_payload"], "properties": {"qr_payload": {"type": "string"}}},
}
PATHS.update(ENROLLMENT_PATHS)
SCHEMAS.update(ENROLLMENT_SCHEMAS)


def _export(fmt: str, media_type: str) -> dict:
    op = _op(f"Download the form's responses as {fmt.upper()}: one row per response at its latest revision, "
             "filtered as the listing; masked unless the key may see personal data (admin)",
             params=[SLUG, _query("masked", "true: mask even for an admin key; false: refused for other keys"),
                     _query("since", "Only responses received at or after this ISO 8601 time"),
                     _query("answer.{key}", "Equality on a choice or boolean answer"),
                     _query("q", "Words that must all appear in the text answers")],
             errors=("304", "422"))
    op["responses"]["200"]["content"] = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    op["responses"]["304"] = {"description": "Not modified: the ETag sent in If-None-Match still matches"}
    return {"get": op}


PATHS["/api/v1/forms/{slug}/export.csv"] = _export("csv", "text/csv")
PATHS["/api/v1/forms/{slug}/export.xlsx"] = _export(
    "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "fieldpipe ingestion API", "version": "1.0.0",
                 "description": "Form responses from field apps, idempotent by submission id. "
                                "Every error is application/problem+json."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "fpk_... API key"}},
            "responses": {"Problem": {"description": "An error (RFC 9457)", "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
        },
    }
