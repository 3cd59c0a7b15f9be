"""OpenRosa submissions: an instance XML (plus files) becomes a response with the JSON API's semantics.

- `meta/instanceID` is the submission id (`uuid:<uuid>`; any other text maps to a stable UUID).
- The same instance again is a duplicate: success, no new row (its files, if any, are still taken).
- Different content under a known instance id is a conflict.
- `meta/deprecatedID` names the instance being replaced: the post is an edit, a new revision of it.
- Files arrive with the XML, possibly across several posts (Collect splits big submissions and repeats the
  XML on each): every post stores the files it carries that the answers name, so the last post completes
  the submission. Each file lands in object storage under a key made of ids and the file's SHA-256, never
  of the device's file name, so names can neither collide nor escape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import psycopg

from fieldpipe import paging, responses
from fieldpipe.objectstore import default_store
from fieldpipe.answers import ATTACHMENT_TYPES, AnswerError, check_attachment_name, content_hash
from fieldpipe.problems import FieldError, Problem, invalid, not_found
from fieldpipe.xforms import Instance, cached_xform, instance_answers, read_instance, submission_uuid

# What an attachment question accepts; `file` takes anything.
ALLOWED_MEDIA = {"image": "image/", "audio": "audio/", "video": "video/"}


@dataclass
class Upload:
    """One multipart file part of a submission."""

    name: str
    content_type: str | None
    data: bytes


@dataclass
class Receipt:
    status: str  # created | duplicate | edited
    form_slug: str
    submission_id: str
    revision: int
    files_stored: int = 0
    files_missing: list[str] = field(default_factory=list)


def find_form(conn: psycopg.Connection, organization_id: int, instance: Instance) -> tuple[dict, dict, dict | None]:
    """In one query: the form whose XForm id the instance's root carries, the version its `version` attribute
    names (the current one when it names none), and what this instance id already made, if anything."""
    row = conn.execute(
        """SELECT f.*, cv.id AS version_id, cv.questions,
                  v.id AS v_id, v.version AS v_version, v.questions AS v_questions, v.xform AS v_xform,
                  oi.response_id AS known_response_id, oi.revision AS known_revision, rr.answers AS known_answers
             FROM forms f
             JOIN form_versions cv ON cv.form_id = f.id AND cv.version = f.current_version
             LEFT JOIN form_versions v ON v.form_id = f.id
                   AND (CASE WHEN %(version)s::text IS NULL THEN v.version = f.current_version
                             ELSE v.xform_version = %(version)s END)
             LEFT JOIN openrosa_instances oi ON oi.form_id = f.id AND oi.instance_id = %(instance)s
             LEFT JOIN response_revisions rr ON rr.response_id = oi.response_id AND rr.revision = oi.revision
            WHERE f.organization_id = %(org)s AND f.xform_id = %(form)s""",
        {"org": organization_id, "form": instance.form_id, "version": instance.version, "instance": instance.instance_id},
    ).fetchone()
    if row is None:
        raise not_found(f"form {instance.form_id!r}")
    if row["v_id"] is None:
        raise not_found(f"version {instance.version!r} of form {instance.form_id!r}")
    version = {"id": row["v_id"], "version": row["v_version"], "questions": row["v_questions"], "xform": row["v_xform"]}
    known = None if row["known_response_id"] is None else {
        "response_id": row["known_response_id"], "revision": row["known_revision"], "answers": row["known_answers"]}
    form = {k: v for k, v in row.items() if not k.startswith(("v_", "known_"))}
    return form, version, known


def attachment_names(answers: dict, questions: list[dict]) -> dict[str, str]:
    """{file name: question type} for every attachment the answers name, repeats included."""
    names: dict[str, str] = {}
    for question in questions:
        value = answers.get(question["key"])
        if question["type"] in ATTACHMENT_TYPES and isinstance(value, str):
            names[value] = question["type"]
        elif question["type"] == "repeat" and isinstance(value, list):
            for item in value:
                names.update(attachment_names(item, question["questions"]))
    return names


def submit(conn: psycopg.Connection, organization_id: int, xml: bytes, uploads: list[Upload], collector: str,
           max_file_bytes: int) -> Receipt:
    """Store one OpenRosa post in the caller's transaction; raise a Problem (nothing stored) when it is refused."""
    instance = read_instance(xml)
    form, version, known = find_form(conn, organization_id, instance)
    answers, errors = instance_answers(instance, cached_xform(version["xform"].encode()))
    if errors:
        raise invalid(errors)
    uploads = _checked_uploads(uploads, max_file_bytes)
    payload = {"submitted_at": dt.datetime.now(dt.timezone.utc).isoformat(), "collector": {"id": collector},
               "answers": answers, "form_version": version["version"]}
    if known is not None:
        receipt = _resubmission(conn, form, version, known, payload)
    elif instance.deprecated_id:
        receipt = _edit(conn, form, instance, payload)
    else:
        receipt = _create(conn, form, instance, payload)
    if not uploads and not attachment_names(answers, version["questions"]):
        return receipt  # most posts: no file named, none sent
    response_id, checked = _current_answers(conn, form["id"], receipt)
    names = attachment_names(checked, version["questions"])
    receipt.files_stored = _store_files(conn, organization_id, form["id"], response_id, names, uploads)
    receipt.files_missing = [r["name"] for r in conn.execute(
        "SELECT name FROM attachments WHERE response_id = %s AND object_key IS NULL ORDER BY name", (response_id,))]
    return receipt


def _checked_uploads(uploads: list[Upload], max_file_bytes: int) -> list[Upload]:
    errors = []
    for upload in uploads:
        try:
            upload.name = check_attachment_name(upload.name)
        except AnswerError as err:
            errors.append(FieldError(f"files.{upload.name}", err.code, str(err)))
            continue
        if len(upload.data) > max_file_bytes:
            raise Problem("payload-too-large", f"file {upload.name!r} is larger than {max_file_bytes} bytes")
    if errors:
        raise invalid(errors)
    return uploads


def _resubmission(conn: psycopg.Connection, form: dict, version: dict, known: dict, payload: dict) -> Receipt:
    sub, errors = responses.check_submission(payload, responses.FormVersions(conn, form), require_id=False)
    if errors:
        raise invalid(errors)
    row = conn.execute("SELECT submission_id FROM responses WHERE id = %s", (known["response_id"],)).fetchone()
    if content_hash(sub.answers) != content_hash(known["answers"]):
        raise Problem("submission-conflict", f"instance {row['submission_id']} was already received with "
                                             "different content; an edit carries a new instanceID and a deprecatedID")
    return Receipt("duplicate", form["slug"], str(row["submission_id"]), known["revision"])


def _edit(conn: psycopg.Connection, form: dict, instance: Instance, payload: dict) -> Receipt:
    target = conn.execute(
        """SELECT r.submission_id FROM openrosa_instances oi JOIN responses r ON r.id = oi.response_id
            WHERE oi.form_id = %s AND oi.instance_id = %s
           UNION ALL
           SELECT submission_id FROM responses WHERE form_id = %s AND submission_id = %s LIMIT 1""",
        (form["id"], instance.deprecated_id, form["id"], submission_uuid(instance.deprecated_id)),
    ).fetchone()
    if target is None:
        raise not_found(f"the submission {instance.deprecated_id!r} that this one replaces")
    record, _ = responses.edit_response(conn, form, str(target["submission_id"]), payload)
    _remember(conn, form["id"], instance.instance_id, target["submission_id"], record["revision"])
    return Receipt("edited", form["slug"], record["submission_id"], record["revision"])


def _create(conn: psycopg.Connection, form: dict, instance: Instance, payload: dict) -> Receipt:
    submission_id = instance.submission_id
    outcome = responses.ingest(conn, form, [{**payload, "submission_id": str(submission_id)}])[0]
    if outcome.status == "invalid":
        raise invalid(outcome.errors)
    if outcome.status == "conflict":
        raise Problem("submission-conflict", f"submission {submission_id} was already received with different "
                                             "answers; an edit carries a new instanceID and a deprecatedID")
    _remember(conn, form["id"], instance.instance_id, submission_id, outcome.record["revision"])
    return Receipt(outcome.status, form["slug"], str(submission_id), outcome.record["revision"])


def _remember(conn: psycopg.Connection, form_id: int, instance_id: str, submission_id: Any, revision: int) -> None:
    conn.execute(
        """INSERT INTO openrosa_instances (form_id, instance_id, response_id, revision)
           SELECT %s, %s, id, %s FROM responses WHERE form_id = %s AND submission_id = %s
           ON CONFLICT DO NOTHING""",
        (form_id, instance_id, revision, form_id, uuid.UUID(str(submission_id))),
    )


def _current_answers(conn: psycopg.Connection, form_id: int, receipt: Receipt) -> tuple[int, dict]:
    row = conn.execute(
        """SELECT r.id, rr.answers FROM responses r
             JOIN response_revisions rr ON rr.response_id = r.id AND rr.revision = %s
            WHERE r.form_id = %s AND r.submission_id = %s""",
        (receipt.revision, form_id, uuid.UUID(receipt.submission_id)),
    ).fetchone()
    return row["id"], row["answers"]


def object_key(organization_id: int, form_id: int, response_id: int, digest: str) -> str:
    """Ids and a content hash only: nothing the device names can reach the key."""
    return f"attachments/{organization_id}/{form_id}/{response_id}/{digest}"


def _media_allowed(question_type: str, upload: Upload) -> bool:
    prefix = ALLOWED_MEDIA.get(question_type)
    if prefix is None:
        return True
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    guessed = mimetypes.guess_type(upload.name)[0] or ""
    return declared.startswith(prefix) or (declared in ("", "application/octet-stream") and guessed.startswith(prefix))


def _store_files(conn: psycopg.Connection, organization_id: int, form_id: int, response_id: int, names: dict[str, str],
                 uploads: list[Upload]) -> int:
    """Record the files the answers name; put those that arrived (files no answer names are not kept)."""
    if names:
        conn.execute(
            """INSERT INTO attachments (response_id, name, question_type)
               SELECT %s, name, question_type FROM unnest(%s::text[], %s::text[]) AS t(name, question_type)
               ON CONFLICT (response_id, name) DO NOTHING""",
            (response_id, list(names), list(names.values())),
        )
    wanted = [u for u in uploads if u.name in names]
    refused = [FieldError(f"files.{u.name}", "media_type", f"a {names[u.name]} question does not take "
                                                           f"{u.content_type or 'this file type'}")
               for u in wanted if not _media_allowed(names[u.name], u)]
    if refused:
        raise invalid(refused)
    store = default_store() if wanted else None  # most posts carry no file: no storage client for them
    for upload in wanted:
        digest = hashlib.sha256(upload.data).hexdigest()
        key = object_key(organization_id, form_id, response_id, digest)
        content_type = upload.content_type or mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
        store.put(key, upload.data, content_type=content_type)
        conn.execute(
            """UPDATE attachments SET object_key = %s, content_type = %s, size = %s, sha256 = %s,
                      received_at = clock_timestamp()
                WHERE response_id = %s AND name = %s""",
            (key, content_type, len(upload.data), digest, response_id, upload.name),
        )
    return len(wanted)


ATTACHMENTS = paging.Keyset("attachments", str)  # ORDER BY name


def list_attachments(conn: psycopg.Connection, response_id: int, page: paging.Page) -> dict:
    rows = conn.execute(
        """SELECT name, question_type, content_type, size, sha256, received_at FROM attachments
            WHERE response_id = %s AND (%s::text IS NULL OR name > %s) ORDER BY name LIMIT %s""",
        (response_id, *((page.after[0],) * 2 if page.after else (None, None)), page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["name"],), shape=lambda r: {**r, "received": r["received_at"] is not None})


def attachment_object(conn: psycopg.Connection, response_id: int, name: str) -> dict:
    row = conn.execute("SELECT * FROM attachments WHERE response_id = %s AND name = %s AND object_key IS NOT NULL",
                       (response_id, name)).fetchone()
    if row is None:
        raise not_found(f"attachment {name!r}")
    return row


def stream(key: str, chunk: int = 64 * 1024) -> Iterator[bytes]:
    with default_store().open(key) as body:
        while data := body.read(chunk):
            yield data


def store_form_media(conn: psycopg.Connection, organization_id: int, form: dict, uploads: list[Upload]) -> int:
    """Keep the files a form shows (sent beside its XLSForm); a file of the same name replaces the earlier one."""
    uploads = _checked_uploads(uploads, max_file_bytes=2**63)
    for upload in uploads:
        digest = hashlib.sha256(upload.data).hexdigest()
        key = f"form-media/{organization_id}/{form['id']}/{digest}"
        content_type = upload.content_type or mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
        default_store().put(key, upload.data, content_type=content_type)
        conn.execute(
            """INSERT INTO form_media (form_id, name, object_key, content_type, size, md5) VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (form_id, name) DO UPDATE SET object_key = EXCLUDED.object_key, size = EXCLUDED.size,
                      content_type = EXCLUDED.content_type, md5 = EXCLUDED.md5, uploaded_at = now()""",
            (form["id"], upload.name, key, content_type, len(upload.data), hashlib.md5(upload.data).hexdigest()),
        )
    return len(uploads)


def form_media(conn: psycopg.Connection, form_id: int) -> list[dict]:
    return conn.execute("SELECT * FROM form_media WHERE form_id = %s ORDER BY name", (form_id,)).fetchall()
