"""Resolving an announcement's audience to recipients and enqueueing their messages, set-based.

- `resolve` writes every recipient in one INSERT ... SELECT: one row per guardian phone (per phone and child
  for `result`), with the names of that guardian's children in the audience, their classes and schools, the
  language of the first guardian row with that phone, and the school's time zone; a phone opted out on any
  of its rows is skipped (`opted_out`), a student without any guardian phone is listed (`no_phone`), and for
  results a child without marks (`no_result`).
- `enqueue` then renders and writes the outbox messages in batches, one INSERT ... SELECT ... ON CONFLICT
  (dedupe_key) DO NOTHING each: the dedupe key `announcement:<id>:<phone>` (`...:<phone>:<student id>` for
  results) makes a rerun, a retried task or a second DAG run add nothing. Bodies are rendered (`rendered_body`)
  and their segments counted (`sms_segments`, migration 0015) in the same statement.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from fieldpipe.announcements import templates
from fieldpipe.announcements.policy import policy_row
from fieldpipe.config import Settings

log = logging.getLogger("fieldpipe.announcements")
ENQUEUE_BATCH = 20_000
ACTIVE_STUDENT = "st.deleted_at IS NULL AND st.left_on IS NULL"


def audience_filter(audience: dict) -> tuple[str, dict]:
    """The WHERE condition (on students st, schools sc) that selects a stored, checked audience."""
    if "class_ids" in audience:
        return "st.class_id = ANY(%(class_ids)s)", {"class_ids": audience["class_ids"]}
    if "student_ids" in audience:
        return "st.id = ANY(%(student_ids)s)", {"student_ids": audience["student_ids"]}
    if "school" in audience:
        return "sc.udise = %(udise)s", {"udise": audience["school"]}
    if "block" in audience:
        return ("sc.block = %(block)s AND (%(district)s::text IS NULL OR sc.district = %(district)s)",
                {"block": audience["block"], "district": audience.get("district")})
    return "sc.district = %(district)s", {"district": audience["district"]}


# The students of the audience with what the roster says about them; %(filter)s is `audience_filter`'s.
AUDIENCE_CTE = """
audience AS (
    SELECT st.id AS student_id, st.name AS student, sc.name AS school, c.grade || '-' || c.section AS class,
           coalesce(sc.time_zone, %(time_zone)s) AS time_zone
      FROM students st JOIN classes c ON c.id = st.class_id JOIN schools sc ON sc.id = c.school_id
     WHERE sc.organization_id = %(org)s AND {active} AND {filter}
), contacts AS (
    -- one row per (phone, child), the first guardian row's language; a phone opted out on any row is opted out
    SELECT DISTINCT ON (g.phone, a.student_id) a.*, g.phone, g.language,
           bool_or(g.opted_out) OVER (PARTITION BY g.phone) AS opted_out
      FROM audience a JOIN guardians g ON g.student_id = a.student_id AND g.phone IS NOT NULL
     ORDER BY g.phone, a.student_id, g.position
)"""

# Each child's total, percentage and grade in the assessment: student-level marks (current rows) or graded
# exam answers (the latest answer per question counting). NULL marks: nothing recorded for that child.
RESULTS_CTE = """,
items AS (
    SELECT sum(max_marks) AS max_marks FROM assessment_items WHERE assessment_id = %(assessment_id)s
), marks AS (
    SELECT m.student_id, sum(m.marks) FILTER (WHERE m.is_present) AS marks,
           string_agg(m.grade, ', ' ORDER BY i.position) FILTER (WHERE m.is_present) AS item_grades
      FROM student_marks m JOIN assessment_items i ON i.id = m.item_id
     WHERE m.assessment_id = %(assessment_id)s AND m.superseded_at IS NULL
       AND m.student_id IN (SELECT student_id FROM audience)
     GROUP BY m.student_id
    UNION ALL
    SELECT student_id, sum(marks), NULL
      FROM (SELECT DISTINCT ON (student_id, item_id) student_id, marks FROM exam_answers
             WHERE assessment_id = %(assessment_id)s AND student_id IN (SELECT student_id FROM audience)
             ORDER BY student_id, item_id, received_at DESC, id DESC) latest
     GROUP BY student_id HAVING count(marks) > 0
), results AS (
    SELECT m.student_id, m.marks, m.item_grades, i.max_marks,
           round(100 * m.marks / i.max_marks, 1) AS percent
      FROM marks m CROSS JOIN items i
     WHERE m.marks IS NOT NULL OR m.item_grades IS NOT NULL
), graded AS (
    -- marks place a child on the grade scale; a graded assessment (no marks) quotes the items' grades
    SELECT r.*, coalesce((SELECT g.grade FROM assessment_grades g
                           WHERE g.assessment_id = %(assessment_id)s AND g.min_percent <= r.percent
                           ORDER BY g.rank LIMIT 1), r.item_grades) AS grade
      FROM results r
)"""

# A phone's children in the audience by id; their classes and schools once each. Every ordered aggregate sorts
# by student id, the order the contacts arrive in, so none sorts per group.
FIELDS = ("""jsonb_build_object('student', string_agg(c.student, ', ' ORDER BY c.student_id),
                    'class', CASE WHEN count(*) = 1 THEN min(c.class)
                                  ELSE array_to_string(ARRAY(SELECT DISTINCT unnest(array_agg(c.class ORDER BY c.student_id)) ORDER BY 1), ', ') END,
                    'school', CASE WHEN count(*) = 1 THEN min(c.school)
                                   ELSE array_to_string(ARRAY(SELECT DISTINCT unnest(array_agg(c.school ORDER BY c.student_id)) ORDER BY 1), ', ') END)""")
RESULT_FIELDS = ("jsonb_build_object('student', min(student), 'class', min(class), 'school', min(school),"
                 " 'assessment', %(assessment)s::text, 'subject', %(subject)s::text,"
                 " 'marks', trim_scale(min(r.marks))::text, 'max_marks', trim_scale(min(r.max_marks))::text,"
                 " 'percent', trim_scale(min(r.percent))::text, 'grade', min(r.grade))")

# One row per recipient; for results, per phone and child.
RECIPIENTS_SQL = """
SELECT {key} AS recipient_key, c.phone, array_agg(c.student_id ORDER BY c.student_id) AS student_ids,
       (array_agg(c.language ORDER BY c.student_id))[1] AS language,
       (array_agg(c.time_zone ORDER BY c.student_id))[1] AS time_zone,
       {fields} AS fields,
       CASE WHEN bool_or(c.opted_out) THEN 'skipped' {no_result} ELSE 'pending' END AS status,
       CASE WHEN bool_or(c.opted_out) THEN 'opted_out' {no_result_reason} END AS reason
  FROM contacts c {join_results}
 GROUP BY {group}
UNION ALL
SELECT 'student:' || a.student_id, NULL, ARRAY[a.student_id], NULL, a.time_zone,
       jsonb_build_object('student', a.student, 'class', a.class, 'school', a.school), 'skipped', 'no_phone'
  FROM audience a
 WHERE NOT EXISTS (SELECT 1 FROM guardians g WHERE g.student_id = a.student_id AND g.phone IS NOT NULL)
"""


def recipients_query(kind: str) -> str:
    """The SELECT of an announcement's recipients (with its CTEs); parameters as `query_params` gives them."""
    if kind == "result":
        body = RECIPIENTS_SQL.format(
            key="c.phone || ':' || c.student_id", fields=RESULT_FIELDS, group="c.phone, c.student_id",
            join_results="LEFT JOIN graded r ON r.student_id = c.student_id",
            no_result="WHEN count(r.student_id) = 0 THEN 'skipped'",
            no_result_reason="WHEN count(r.student_id) = 0 THEN 'no_result'")
        ctes = AUDIENCE_CTE + RESULTS_CTE
    else:
        body = RECIPIENTS_SQL.format(key="c.phone", fields=FIELDS, group="c.phone", join_results="",
                                     no_result="", no_result_reason="")
        ctes = AUDIENCE_CTE
    return "WITH " + ctes.strip() + "\n" + body


def query_params(conn: psycopg.Connection, organization_id: int, audience: dict, values: dict) -> tuple[str, dict]:
    """(the audience condition, the parameters of `recipients_query`)."""
    condition, params = audience_filter(audience)
    params.update({"org": organization_id, "time_zone": policy_row(conn, organization_id)["time_zone"]})
    if "assessment_id" in values:
        row = conn.execute("""SELECT a.title, s.name AS subject FROM assessments a LEFT JOIN subjects s ON s.id = a.subject_id
                               WHERE a.id = %s""", (values["assessment_id"],)).fetchone()
        params.update({"assessment_id": values["assessment_id"], "assessment": row["title"] if row else "",
                       "subject": (row["subject"] if row else None) or ""})
    return condition, params


def _sql(kind: str, condition: str) -> str:
    return recipients_query(kind).replace("{active}", ACTIVE_STUDENT).replace("{filter}", condition)


def count_recipients(conn: psycopg.Connection, organization_id: int, kind: str, audience: dict, values: dict) -> dict:
    """How many students the audience holds and how many recipients (to message, skipped) it resolves to."""
    condition, params = query_params(conn, organization_id, audience, values)
    row = conn.execute(
        f"""SELECT count(*) AS resolved, count(*) FILTER (WHERE status = 'skipped') AS skipped,
                   (SELECT count(*) FROM students st JOIN classes c ON c.id = st.class_id
                      JOIN schools sc ON sc.id = c.school_id
                     WHERE sc.organization_id = %(org)s AND {ACTIVE_STUDENT} AND {condition}) AS students
              FROM ({_sql(kind, condition)}) r""", params).fetchone()
    return dict(row)


def resolve(conn: psycopg.Connection, announcement: dict) -> dict:
    """Write the announcement's recipients (one statement); a second call adds nothing."""
    condition, params = query_params(conn, announcement["organization_id"], announcement["audience"],
                                     announcement["values"])
    params["id"] = announcement["id"]
    conn.execute(
        f"""INSERT INTO announcement_recipients (announcement_id, recipient_key, phone, student_ids, language, time_zone,
                                                 fields, status, reason, dedupe_key)
            SELECT %(id)s, r.recipient_key, r.phone, r.student_ids, r.language, r.time_zone, r.fields, r.status, r.reason,
                   CASE WHEN r.status = 'pending' THEN 'announcement:' || %(id)s || ':' || r.recipient_key END
              FROM ({_sql(announcement['kind'], condition)}) r
            ON CONFLICT (announcement_id, recipient_key) DO NOTHING""", params)
    row = conn.execute(
        """SELECT count(*) AS resolved, count(*) FILTER (WHERE status = 'skipped') AS skipped
             FROM announcement_recipients WHERE announcement_id = %s""", (announcement["id"],)).fetchone()
    return dict(row)


ENQUEUE_SQL = """
WITH batch AS (
    SELECT r.recipient_key, r.phone, r.dedupe_key, r.time_zone, {body} AS body
      FROM announcement_recipients r
           CROSS JOIN (SELECT bodies, default_language FROM announcements WHERE id = %(id)s) a
     WHERE r.announcement_id = %(id)s AND r.status = 'pending' AND r.recipient_key > %(after)s
     ORDER BY r.recipient_key
     LIMIT %(limit)s
), counted AS (
    SELECT b.*, sms_segments(b.body) AS segments FROM batch b
), inserted AS (
    INSERT INTO sms_messages (organization_id, dedupe_key, kind, recipient, body, template, encoding, segments,
                              status, last_error, time_zone, sender_id, dlt_template_id)
    SELECT %(org)s, c.dedupe_key, 'announcement', c.phone, c.body, %(template)s, sms_encoding(c.body), c.segments,
           CASE WHEN c.segments > %(max_segments)s THEN 'failed' ELSE 'queued' END,
           CASE WHEN c.segments > %(max_segments)s
                THEN format('body needs %%s %%s segments, over the maximum of %%s; shorten the template rather than cut the message',
                            c.segments, sms_encoding(c.body), %(max_segments)s) END,
           c.time_zone, %(sender_id)s, %(dlt_template_id)s
      FROM counted c
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT max(recipient_key) FROM batch) AS last_key, (SELECT count(*) FROM batch) AS taken,
       (SELECT count(*) FROM inserted) AS enqueued
"""


def rendered_body(kind: str) -> str:
    """The SQL of a recipient's body: the body in their language (else the announcement's default) with the
    per-recipient placeholders replaced, as one expression so it costs no function call per row."""
    expression = "coalesce(a.bodies ->> r.language, a.bodies ->> a.default_language)"
    for name in templates.ROSTER_FIELDS + (templates.RESULT_FIELDS if kind == "result" else ()):
        expression = f"replace({expression}, '{{{name}}}', coalesce(r.fields ->> '{name}', ''))"
    return expression


def enqueue(conn: psycopg.Connection, announcement: dict, batch_size: int = ENQUEUE_BATCH) -> dict:
    """Write the outbox messages of the announcement's pending recipients, one statement per batch."""
    params = {"id": announcement["id"], "org": announcement["organization_id"], "limit": batch_size,
              "template": announcement["template_name"], "max_segments": Settings.from_env().sms_max_segments,
              "sender_id": announcement["sender_id"], "dlt_template_id": announcement["dlt_template_id"], "after": ""}
    batches = enqueued = 0
    while True:
        row = conn.execute(ENQUEUE_SQL.format(body=rendered_body(announcement["kind"])), params).fetchone()
        if not row["taken"]:
            break
        batches += 1
        enqueued += row["enqueued"]
        params["after"] = row["last_key"]
    return {"batches": batches, "enqueued": enqueued}


ANNOUNCEMENT_SQL = """SELECT a.*, t.name AS template_name FROM announcements a JOIN sms_templates t ON t.id = a.template_id"""


def fan_out(conn: psycopg.Connection, announcement: dict) -> dict:
    """Resolve and enqueue one announcement (in the caller's transaction) and mark it sending."""
    started = time.monotonic()
    conn.execute("SET LOCAL work_mem = '64MB'")  # the audience's sort stays in memory
    counts = resolve(conn, announcement)
    counts.update(enqueue(conn, announcement))
    conn.execute("UPDATE announcements SET status = 'sending', fanned_out_at = now() WHERE id = %s", (announcement["id"],))
    counts.update(announcement_id=announcement["id"], seconds=round(time.monotonic() - started, 3))
    log.info("announcement %d: resolved %d recipients (%d skipped), enqueued %d messages in %d batches, %.1f s",
             announcement["id"], counts["resolved"], counts["skipped"], counts["enqueued"], counts["batches"],
             counts["seconds"])
    return counts


def fan_out_due(conn: psycopg.Connection) -> dict[str, Any]:
    """Fan out every scheduled announcement whose send time has come, each in its own transaction.

    Announcements are taken FOR UPDATE SKIP LOCKED, so two runs never fan out the same one, and a cancel
    waits for a fan-out in progress (then cancels what it queued)."""
    report: dict[str, Any] = {"announcements": 0, "resolved": 0, "skipped": 0, "enqueued": 0, "each": []}
    while True:
        with conn.transaction():
            row = conn.execute(
                ANNOUNCEMENT_SQL + """ WHERE a.status = 'scheduled' AND a.send_at <= now()
                                        ORDER BY a.send_at, a.id LIMIT 1 FOR UPDATE OF a SKIP LOCKED""").fetchone()
            if row is None:
                break
            counts = fan_out(conn, row)
        report["announcements"] += 1
        for name in ("resolved", "skipped", "enqueued"):
            report[name] += counts[name]
        report["each"].append(counts)
    log.info("announcements fanned out: %d, recipients resolved %d (skipped %d), messages enqueued %d",
             report["announcements"], report["resolved"], report["skipped"], report["enqueued"])
    return report
