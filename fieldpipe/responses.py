"""Responses: idempotent ingestion (one or a batch), edits as revisions, reading and searching.

Idempotency rests on the unique key (form_id, submission_id) and `ON CONFLICT DO NOTHING`:
the same submission posted twice, or by two clients at once, leaves one row. A post whose
id exists is a duplicate when its answers hash like the first submission's, else a conflict.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from fieldpipe import domains
from fieldpipe.answers import (
    CHOICE_TYPES, AnswerError, AnswersChecker, normalize_phone, split_words,
)
from fieldpipe.forms import get_version
from fieldpipe import paging
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.tasks import hooks as task_hooks

MAX_BATCH = 1000
RESPONSES = paging.Keyset("responses", dt.datetime, int)  # ORDER BY received_at, id
REVISIONS = paging.Keyset("revisions", int)

RESPONSE_COLUMNS = """r.id, r.submission_id, r.revision, r.collector_id, r.collector_phone, r.submitted_at,
       r.received_at, r.updated_at, r.answers, v.version AS form_version"""


@dataclass
class Submission:
    """A checked submission, ready to store."""

    submission_id: uuid.UUID
    submitted_at: dt.datetime
    collector_id: str
    collector_phone: str | None
    answers: dict
    form_version_id: int
    form_version: int
    words: list[str]
    hash: str  # content_hash(answers)


@dataclass
class Outcome:
    status: str  # created | duplicate | conflict | invalid
    submission_id: str | None
    record: dict | None = None
    errors: list[FieldError] = field(default_factory=list)


def parse_timestamp(value: Any, name: str, errors: list[FieldError]) -> dt.datetime | None:
    if not isinstance(value, str):
        errors.append(FieldError(name, "required", "must be an ISO 8601 timestamp with a time zone"))
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(name, "format", "must be an ISO 8601 timestamp with a time zone"))
        return None
    if parsed.tzinfo is None:
        errors.append(FieldError(name, "timezone", "must carry a time zone offset, e.g. 2026-11-23T10:00:00+05:30"))
        return None
    problem = domains.timestamp_problem(parsed)
    if problem:
        errors.append(FieldError(name, *problem))
        return None
    # In UTC: the same instant, and an offset PostgreSQL takes (Python reads offsets up to 23:59, PostgreSQL 15:59).
    return parsed.astimezone(dt.timezone.utc)


class FormVersions:
    """The versions of one form, loaded on demand and kept for the length of a request (or an import), each
    with its questions compiled once into a `checker` (AnswersChecker)."""

    def __init__(self, conn: psycopg.Connection, form: dict):
        self.conn, self.form = conn, form
        self._cache: dict[int, dict | None] = {}

    def get(self, version: int) -> dict | None:
        if version not in self._cache:
            found = ({"id": self.form["version_id"], "version": version, "questions": self.form["questions"]}
                     if version == self.form["current_version"] else get_version(self.conn, self.form["id"], version))
            self._cache[version] = found and {**found, "checker": AnswersChecker(found["questions"])}
        return self._cache[version]


def parse_submission_id(value: Any, errors: list[FieldError]) -> uuid.UUID | None:
    """The device-made UUID that makes a post idempotent; shared by responses and assessment submissions."""
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        errors.append(FieldError("submission_id", "format", "must be a UUID made on the device"))
    return parsed


def parse_collector_id(collector: Any, errors: list[FieldError]) -> str | None:
    """The envelope's `collector.id` (a non-blank string), or None with an error added."""
    if not isinstance(collector, dict) or not isinstance(collector.get("id"), str) or not collector["id"].strip():
        errors.append(FieldError("collector.id", "required", "is required"))
        return None
    if problem := domains.text_problem(collector["id"], domains.NAME_MAX_LENGTH):
        errors.append(FieldError("collector.id", *problem))
        return None
    return collector["id"]


def check_submission(payload: Any, versions: FormVersions,
                     require_id: bool = True) -> tuple[Submission | None, list[FieldError]]:
    """Check the envelope and the answers; return the submission or the errors, never both."""
    if not isinstance(payload, dict):
        return None, [FieldError("", "type", "must be a JSON object")]
    errors: list[FieldError] = []
    parsed_id = parse_submission_id(payload.get("submission_id"), errors) if require_id else None
    submitted_at = parse_timestamp(payload.get("submitted_at"), "submitted_at", errors)
    collector = payload.get("collector")
    collector_id, collector_phone = parse_collector_id(collector, errors), None
    if collector_id is not None and collector.get("phone") not in (None, ""):
        try:
            collector_phone = normalize_phone(collector["phone"])
        except AnswerError as err:
            errors.append(FieldError("collector.phone", err.code, str(err)))
    version_no = payload.get("form_version", versions.form["current_version"])
    version = versions.get(version_no) if isinstance(version_no, int) and not isinstance(version_no, bool) else None
    if version is None:
        errors.append(FieldError("form_version", "unknown", f"form version {version_no!r} does not exist"))
        return None, errors
    checker = version["checker"]
    answers, answer_errors = checker.check(payload.get("answers"))
    errors += answer_errors
    if errors:
        return None, errors
    return Submission(parsed_id, submitted_at, collector_id, collector_phone, answers, version["id"],
                      version["version"], checker.search_words(answers), checker.hash(answers)), []


INSERT_SQL = """
WITH input AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb)
        AS (submission_id uuid, form_version_id bigint, collector_id text, collector_phone text,
            submitted_at timestamptz, answers jsonb, content_hash text, words text[])) WITH ORDINALITY
        AS t(submission_id, form_version_id, collector_id, collector_phone, submitted_at, answers, content_hash,
             words, position)
), numbered AS MATERIALIZED (
    -- ids in the batch's order (listings and exports follow it) ...
    -- (the sequence named, not looked up: pg_get_serial_sequence ran once per row)
    SELECT *, nextval('responses_id_seq') AS id, clock_timestamp() AS received_at
      FROM (SELECT * FROM input ORDER BY position) o
), created AS (
    INSERT INTO responses (id, received_at, updated_at, form_id, form_version_id, submission_id, collector_id,
                           collector_phone, submitted_at, answers, content_hash, search_words)
    SELECT id, received_at, received_at, %(form_id)s, form_version_id, submission_id, collector_id, collector_phone,
           submitted_at, answers, content_hash, words
      FROM numbered
     -- ... but rows locked in one order for every batch (batches sharing new ids never deadlock), and of one id
     -- sent twice in a batch, the first is the one stored
     ORDER BY submission_id, position
    ON CONFLICT (form_id, submission_id) DO NOTHING
    RETURNING *
), revisions AS (
    INSERT INTO response_revisions (response_id, revision, form_version_id, collector_id, collector_phone,
                                    submitted_at, answers, created_at)
    SELECT id, 1, form_version_id, collector_id, collector_phone, submitted_at, answers, received_at FROM created
)
-- Positions, not ids: a thousand integers cost less to read back than a thousand UUIDs.
SELECT n.position, c.id, c.received_at FROM created c JOIN numbered n USING (id)
"""


def insert_document(submissions: list[Submission]) -> Jsonb:
    """The submissions as the one JSON document INSERT_SQL reads, encoded here and now (an import encodes a
    chunk while the chunk before it is being stored): one parameter to send instead of thousands, encoded by
    msgspec (a tenth of the json module's time; every value in it is within the JSON domain the API accepts).
    """
    encoded = msgspec.json.encode([
        {"submission_id": str(s.submission_id), "form_version_id": s.form_version_id, "collector_id": s.collector_id,
         "collector_phone": s.collector_phone, "submitted_at": s.submitted_at.isoformat(), "answers": s.answers,
         "content_hash": s.hash, "words": s.words}
        for s in submissions
    ])
    return Jsonb(encoded, dumps=bytes)  # already encoded: bytes() hands the same object back


def store(conn: psycopg.Connection, form_id: int, submissions: list[Submission],
          document: Jsonb | None = None) -> tuple[dict, dict]:
    """Insert what is new; return ({submission_id: created row (id, received_at)}, {submission_id: existing row}).

    `document` is `insert_document(submissions)` when the caller encoded it already.
    """
    cursor = conn.cursor(row_factory=tuple_row)
    cursor.execute(INSERT_SQL, {"form_id": form_id, "rows": insert_document(submissions) if document is None else document})
    created = {submissions[position - 1].submission_id: {"id": response_id, "received_at": received_at}
               for position, response_id, received_at in cursor}
    missing = [s.submission_id for s in submissions if s.submission_id not in created]
    existing = {}
    if missing:
        existing = {
            row["submission_id"]: row
            for row in conn.execute(
                f"""SELECT {RESPONSE_COLUMNS}, r.content_hash FROM responses r
                      JOIN form_versions v ON v.id = r.form_version_id
                     WHERE r.form_id = %s AND r.submission_id = ANY(%s)""",
                (form_id, missing),
            )
        }
    return created, existing


def record_body(form_slug: str, row: dict) -> dict:
    return {
        "submission_id": str(row["submission_id"]),
        "form": form_slug,
        "form_version": row["form_version"],
        "revision": row["revision"],
        "collector": {"id": row["collector_id"], "phone": row["collector_phone"]},
        "submitted_at": row["submitted_at"],
        "received_at": row["received_at"],
        "updated_at": row["updated_at"],
        "answers": row["answers"],
    }


def _created_body(form_slug: str, sub: Submission, row: dict) -> dict:
    return record_body(form_slug, {
        "submission_id": sub.submission_id, "form_version": sub.form_version, "revision": 1,
        "collector_id": sub.collector_id, "collector_phone": sub.collector_phone, "submitted_at": sub.submitted_at,
        "received_at": row["received_at"], "updated_at": row["received_at"], "answers": sub.answers,
    })


def judge(versions: FormVersions, items: list[Any]) -> tuple[list[Outcome], list[tuple[int, Submission]]]:
    """Check each item on its own: an outcome per item (`invalid` until stored) and the valid submissions."""
    outcomes: list[Outcome] = []
    valid: list[tuple[int, Submission]] = []
    for item in items:
        sub, errors = check_submission(item, versions)
        raw_id = item.get("submission_id") if isinstance(item, dict) else None
        outcomes.append(Outcome("invalid", raw_id if isinstance(raw_id, str) else None, errors=errors))
        if sub is not None:
            valid.append((len(outcomes) - 1, sub))
    return outcomes, valid


def settle(conn: psycopg.Connection, form: dict, outcomes: list[Outcome], valid: list[tuple[int, Submission]],
           send_receipts: bool = True, records: bool = True, document: Jsonb | None = None) -> list[Outcome]:
    """Store the valid new submissions in one statement and settle each outcome as created, duplicate or conflict.

    `send_receipts=False` is for imports of a form whose settings turn receipts off for them; `records=False`
    leaves out each outcome's record (the stored response as the API shows it), which imports never show;
    `document` is the valid submissions' `insert_document`, when the caller encoded it already.
    """
    if not valid:
        return outcomes
    created, existing = store(conn, form["id"], [s for _, s in valid], document)
    task_hooks.on_created(conn, form, created, [s for _, s in valid], send_receipts)  # same transaction
    first_of: dict[uuid.UUID, Submission] = {}  # of an id sent twice in the batch, the first is the one stored
    for index, sub in valid:
        outcome = outcomes[index]
        outcome.submission_id = str(sub.submission_id)
        first = first_of.setdefault(sub.submission_id, sub)
        if sub.submission_id in created:
            if first is sub:
                outcome.status = "created"
                outcome.record = _created_body(form["slug"], sub, created[sub.submission_id]) if records else None
                continue
            same = first.hash == sub.hash
            stored_body = _created_body(form["slug"], first, created[sub.submission_id]) if same and records else None
        else:
            stored = existing[sub.submission_id]
            same = stored["content_hash"] == sub.hash
            stored_body = record_body(form["slug"], stored) if same and records else None
        outcome.status = "duplicate" if same else "conflict"
        outcome.record = stored_body
    return outcomes


def ingest(conn: psycopg.Connection, form: dict, items: list[Any]) -> list[Outcome]:
    """Judge each item on its own and store the valid new ones in one statement."""
    outcomes, valid = judge(FormVersions(conn, form), items)
    return settle(conn, form, outcomes, valid)


def lookup(conn: psycopg.Connection, form: dict, submission_id: str, lock: bool = False) -> dict:
    try:
        parsed = uuid.UUID(submission_id)
    except ValueError:
        raise not_found(f"response {submission_id!r}") from None
    row = conn.execute(
        f"""SELECT {RESPONSE_COLUMNS}, r.form_version_id FROM responses r
              JOIN form_versions v ON v.id = r.form_version_id
             WHERE r.form_id = %s AND r.submission_id = %s {'FOR UPDATE OF r' if lock else ''}""",
        (form["id"], parsed),
    ).fetchone()
    if row is None:
        raise not_found(f"response {submission_id!r}")
    return row


def get_response(conn: psycopg.Connection, form: dict, submission_id: str) -> dict:
    return record_body(form["slug"], lookup(conn, form, submission_id))


def list_revisions(conn: psycopg.Connection, form: dict, submission_id: str, page: paging.Page) -> dict:
    """A page of a response's revisions, oldest first."""
    row = lookup(conn, form, submission_id)
    rows = conn.execute(
        """SELECT rr.revision, v.version AS form_version, rr.collector_id, rr.collector_phone, rr.submitted_at,
                  rr.created_at, rr.answers
             FROM response_revisions rr JOIN form_versions v ON v.id = rr.form_version_id
            WHERE rr.response_id = %s AND rr.revision > %s ORDER BY rr.revision LIMIT %s""",
        (row["id"], page.after[0] if page.after else 0, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["revision"],), shape=revision_body)


def revision_body(row: dict) -> dict:
    return {"revision": row["revision"], "form_version": row["form_version"],
            "collector": {"id": row["collector_id"], "phone": row["collector_phone"]},
            "submitted_at": row["submitted_at"], "created_at": row["created_at"], "answers": row["answers"]}


def edit_response(conn: psycopg.Connection, form: dict, submission_id: str, payload: Any) -> tuple[dict, bool]:
    """Store an edit as a new revision; an edit equal to the current answers changes nothing.

    Returns the record and whether a new revision was made.
    """
    current = lookup(conn, form, submission_id, lock=True)
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    envelope = {
        "submitted_at": payload.get("submitted_at", current["submitted_at"].isoformat()),
        "collector": payload.get("collector", {"id": current["collector_id"], "phone": current["collector_phone"]}),
        "answers": payload.get("answers", current["answers"]),
        "form_version": payload.get("form_version", current["form_version"]),
    }
    sub, errors = check_submission(envelope, FormVersions(conn, form), require_id=False)
    if errors:
        raise invalid(errors)
    if sub.answers == current["answers"] and sub.form_version_id == current["form_version_id"]:
        return record_body(form["slug"], current), False
    row = conn.execute(
        """UPDATE responses SET revision = revision + 1, answers = %s, form_version_id = %s, collector_id = %s,
                  collector_phone = %s, submitted_at = %s, search_words = %s, updated_at = clock_timestamp()
            WHERE id = %s RETURNING *""",
        (Jsonb(sub.answers), sub.form_version_id, sub.collector_id, sub.collector_phone, sub.submitted_at,
         sub.words, current["id"]),
    ).fetchone()
    conn.execute(
        """INSERT INTO response_revisions (response_id, revision, form_version_id, collector_id, collector_phone,
                                           submitted_at, answers, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (row["id"], row["revision"], sub.form_version_id, sub.collector_id, sub.collector_phone, sub.submitted_at,
         Jsonb(sub.answers), row["updated_at"]),
    )
    task_hooks.on_updated(conn, form["id"], row["id"], row["revision"])
    return record_body(form["slug"], {**row, "form_version": sub.form_version}), True


def list_responses(conn: psycopg.Connection, form: dict, page: paging.Page, *, since: str | None = None,
                   answer_filters: dict[str, str] | None = None, q: str | None = None) -> dict:
    """A page of responses in (received_at, id) order, using the indexes for every filter.

    `answer_filters` match choice answers exactly (a multi-choice answer matches when it contains the value),
    through the GIN index on `answers`; `q` matches responses whose text answers contain every word.
    """
    errors: list[FieldError] = []
    clauses, params = response_filters(form, since=since, answer_filters=answer_filters, q=q, errors=errors)
    if page.after:
        clauses.append("(r.received_at, r.id) > (%s, %s)")
        params += page.after
    if errors:
        raise invalid(errors)
    rows = conn.execute(
        f"""SELECT {RESPONSE_COLUMNS} FROM responses r JOIN form_versions v ON v.id = r.form_version_id
             WHERE {' AND '.join(clauses)} ORDER BY r.received_at, r.id LIMIT %s""",
        (*params, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["received_at"], r["id"]), shape=lambda r: record_body(form["slug"], r))


def response_filters(form: dict, *, since: str | None = None, answer_filters: dict[str, str] | None = None,
                     q: str | None = None, errors: list[FieldError]) -> tuple[list[str], list[Any]]:
    """SQL conditions on `responses r` (with %s parameters) for the listing's filters; problems go to `errors`."""
    clauses, params = ["r.form_id = %s"], [form["id"]]
    if since:
        since_at = parse_timestamp(since, "since", errors)
        clauses.append("r.received_at >= %s")
        params.append(since_at)
    questions = {q_["key"]: q_ for q_ in form["questions"]}
    for key, value in (answer_filters or {}).items():
        question = questions.get(key)
        if question is None or question["type"] not in CHOICE_TYPES + ("boolean",):
            errors.append(FieldError(f"answer.{key}", "not_filterable", "only choice and boolean questions can be filtered on"))
            continue
        typed: Any = value
        if question["type"] == "boolean":
            typed = value.lower() == "true"
        elif question["type"] == "multi_choice":
            typed = [value]
        clauses.append("r.answers @> %s")
        params.append(Jsonb({key: typed}))
    if q:
        words = split_words(q)
        if words:
            clauses.append("r.search_words @> %s::text[]")
            params.append(words)
    return clauses, params
