"""Figure `announcement_fanout`: an announcement to 200,000 guardians across 1,000 schools, resolved and enqueued.

The roster: 1,000 schools in one district, 5 classes each, one guardian with a phone per student (a third of
them English-speaking, the rest Hindi). A holiday announcement in Hindi and English to the whole district is
made through `service.create_announcement` (which counts its recipients), then fanned out with the real
`fan_out` in one transaction: one INSERT ... SELECT of the recipients, then the outbox messages rendered and
segment-counted in SQL, one INSERT ... SELECT ... ON CONFLICT DO NOTHING per batch of 20,000.

Value: seconds to resolve and enqueue (the fan-out); target <= 10 s. Reported beside it: the seconds the API
takes to check and count the announcement when it is made.

Baseline (same run, same database): one recipient at a time, as the source system's adapter did it: for each
student, read its guardians, render the body in Python and enqueue one message (one INSERT each), timed on
a sample of 2,000 students and scaled to the whole audience.

`BENCH_ANNOUNCEMENT_GUARDIANS` sets the number of guardians (default 200,000) for a quick run.
"""

from __future__ import annotations

import os
import time

from bench.common import figure, throwaway_database
from fieldpipe.announcements import fanout, service, templates
from fieldpipe.db import connect
from fieldpipe.orgs import Caller, create_key, organization_id
from fieldpipe.sms.outbox import NewMessage, enqueue

GUARDIANS = int(os.environ.get("BENCH_ANNOUNCEMENT_GUARDIANS", 200_000))
SCHOOLS = 1_000
CLASSES_PER_SCHOOL = 5
BASELINE_SAMPLE = 2_000
TEMPLATE = {"name": "holiday", "kind": "holiday",
            "bodies": {"hi": "प्रिय अभिभावक, {school} में {date} को अवकाश रहेगा। छात्र: {student} ({class})",
                       "en": "Dear parent, {school} is closed on {date}. Student: {student} ({class})"}}


def _roster(conn, org: int) -> None:
    schools = min(SCHOOLS, max(1, GUARDIANS // 200))
    per_class = max(1, GUARDIANS // (schools * CLASSES_PER_SCHOOL))
    conn.execute("""INSERT INTO schools (organization_id, udise, name, district, block)
                    SELECT %s, lpad(g::text, 11, '0'), 'GPS ' || g, 'Bench', 'Block ' || (g %% 50)
                      FROM generate_series(1, %s) g""", (org, schools))
    conn.execute("""INSERT INTO classes (school_id, grade, section)
                    SELECT s.id, grade, 'A' FROM schools s, generate_series(1, %s) grade""", (CLASSES_PER_SCHOOL,))
    conn.execute("""INSERT INTO students (class_id, roll_number, name)
                    SELECT c.id, n::text, 'Student ' || c.id || '-' || n FROM classes c, generate_series(1, %s) n""",
                 (per_class,))
    conn.execute("""INSERT INTO guardians (student_id, position, name, relation, phone, language)
                    SELECT id, 1, 'Parent ' || id, 'mother', '+91' || (7000000000 + id)::text,
                           CASE WHEN id % 3 = 0 THEN 'en' ELSE 'hi' END
                      FROM students""")
    conn.execute("ANALYZE")


def _baseline(conn, org: int, announcement: dict) -> float:
    """Seconds per recipient, one at a time: read a student's guardians, render, one INSERT per message."""
    students = [r["id"] for r in conn.execute("SELECT id FROM students ORDER BY id LIMIT %s", (BASELINE_SAMPLE,))]
    started = time.monotonic()
    for student_id in students:
        with conn.transaction():
            for g in conn.execute(
                    """SELECT g.phone, g.language, st.name AS student, sc.name AS school, c.grade || '-' || c.section AS class
                         FROM guardians g JOIN students st ON st.id = g.student_id JOIN classes c ON c.id = st.class_id
                         JOIN schools sc ON sc.id = c.school_id
                        WHERE g.student_id = %s AND g.phone IS NOT NULL AND NOT g.opted_out""", (student_id,)).fetchall():
                body = announcement["bodies"].get(g["language"]) or announcement["bodies"]["hi"]
                for name in ("school", "class", "student"):
                    body = body.replace("{" + name + "}", g[name])
                enqueue(conn, [NewMessage(f"baseline:{announcement['id']}:{g['phone']}", "announcement", org,
                                          g["phone"], body)])
    return (time.monotonic() - started) / len(students)


def run() -> dict:
    with throwaway_database() as url, connect(url, autocommit=True) as conn:
        key = create_key(conn, "bench", "admin", create_org=True)
        org = organization_id(conn, "bench")
        key_id = conn.execute("SELECT id FROM api_keys").fetchone()["id"]
        caller = Caller(org, "bench", "admin", key_id)
        assert key
        _roster(conn, org)
        conn.execute("INSERT INTO sms_policies (organization_id, approval_threshold) VALUES (%s, 10000000)", (org,))
        with conn.transaction():
            template = templates.create_template(conn, org, TEMPLATE)
            started = time.monotonic()
            made = service.create_announcement(conn, caller, {
                "template_id": template["id"], "values": {"date": "15 अगस्त"}, "audience": {"district": "Bench"}})
            create_s = time.monotonic() - started
        row = conn.execute(fanout.ANNOUNCEMENT_SQL + " WHERE a.id = %s", (made["id"],)).fetchone()
        started = time.monotonic()
        with conn.transaction():
            counts = fanout.fan_out(conn, row)
        fanout_s = time.monotonic() - started
        assert counts["enqueued"] == made["recipients"] == counts["resolved"], (counts, made["recipients"])
        per_recipient = _baseline(conn, org, row)
        load = os.getloadavg()[0]
    baseline_s = per_recipient * counts["resolved"]
    print(f"   {counts['resolved']:,} recipients: made (checked and counted) in {create_s:.2f} s, resolved and "
          f"enqueued in {fanout_s:.2f} s ({counts['batches']} batches); one at a time: {per_recipient * 1000:.2f} ms "
          f"per recipient, {baseline_s:.0f} s for all; load average {load:.1f}")
    return figure(fanout_s, "s", baseline_s, "<= 10 s for 200,000 guardians across 1,000 schools",
                  higher_is_better=False, recipients=counts["resolved"], create_seconds=round(create_s, 2),
                  batches=counts["batches"], load_average=round(load, 1),
                  baseline_method=f"one recipient at a time, {BASELINE_SAMPLE} sampled and scaled")
