"""`exam_answers_ingest` and `exam_close_to_results` (issue 25).

exam_answers_ingest: answers per second posted by concurrent students (200; BENCH_EXAM_STUDENTS), each signed
in with their own token, one answer per request as a phone app sends them, through gunicorn. The baseline is
the teacher's batch route (`POST /api/v1/assessments/{id}/answers`, an API key) carrying one answer per batch
under the same load: what a phone had to use before.

exam_close_to_results: 100,000 answers of 5,000 students (BENCH_EXAM_CLOSE_STUDENTS, 20 questions each)
graded and readable as results after close: the close request, then every page of the results listing
(limit 1000). The baseline is what the same answers took to become visible before: the daily run's grading
and summary (`grade_exam_answers` + `summarize_interval`), which gave counts, not per-student scores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import uuid

import requests

from bench.bench_ingest import gunicorn
from bench.common import admin_key, figure, throwaway_database
from bench.loadgen import run_load
from fieldpipe.db import connect

SECONDS = float(os.environ.get("BENCH_EXAM_SECONDS", 20))
STUDENTS = int(os.environ.get("BENCH_EXAM_STUDENTS", 200))
CLOSE_STUDENTS = int(os.environ.get("BENCH_EXAM_CLOSE_STUDENTS", 5000))
QUESTIONS = 20
CHOICES = ["a", "b", "c", "d"]
CLASS_SIZE = 100


def _school(api: str, headers: dict, students: int) -> tuple[list[int], list[dict]]:
    """A school with classes of up to 100 students; returns (class ids, students with their class)."""
    requests.post(f"{api}/schools", json={"udise": "02010100999", "name": "Bench school", "district": "Shimla",
                                          "block": "Mashobra"}, headers=headers).raise_for_status()
    class_ids, roster = [], []
    for n in range((students + CLASS_SIZE - 1) // CLASS_SIZE):
        klass = requests.post(f"{api}/schools/02010100999/classes", json={"grade": 1 + n // 26,
                                                                          "section": chr(65 + n % 26)},
                              headers=headers)
        klass.raise_for_status()
        class_id = klass.json()["id"]
        size = min(CLASS_SIZE, students - n * CLASS_SIZE)
        imported = requests.post(f"{api}/classes/{class_id}/students", headers=headers, json={"students": [
            {"roll_number": str(r + 1), "name": f"Student {n}-{r + 1}"} for r in range(size)]})
        imported.raise_for_status()
        class_ids.append(class_id)
        roster += [{**s, "class_id": class_id} for s in imported.json()["students"]]
    return class_ids, roster


def _exam(api: str, headers: dict, class_ids: list[int]) -> int:
    resp = requests.post(f"{api}/assessments", headers=headers, json={
        "title": "Bench exam", "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
        "items": [{"key": f"q{i}", "max_marks": 1, "choices": CHOICES, "answer_key": "a"} for i in range(QUESTIONS)],
        "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 0}],
        "pass_criterion": {"min_percent": 40}, "class_ids": class_ids})
    resp.raise_for_status()
    return resp.json()["id"]


def _answers(path: str, count: int):
    bodies = iter([json.dumps({"answer_id": str(uuid.uuid4()), "question": f"q{random.randrange(QUESTIONS)}",
                               "answer": random.choice(CHOICES)}).encode() for _ in range(count)])
    return lambda: (path, next(bodies))


def _batches(path: str, class_id: int, student_ids: list[int], count: int):
    bodies = iter([json.dumps({
        "submission_id": str(uuid.uuid4()), "class_id": class_id, "submitted_at": "2026-11-29T10:00:00+05:30",
        "collector": {"id": "tablet"}, "answers": [{"student_id": random.choice(student_ids),
                                                    "question": f"q{random.randrange(QUESTIONS)}",
                                                    "answer": random.choice(CHOICES)}]}).encode()
                   for _ in range(count)])
    return lambda: (path, next(bodies))


def answers_ingest(url: str) -> dict:
    key = admin_key(url)
    headers = {"Authorization": f"Bearer {key}"}
    per_client = int(SECONDS * 3000 / STUDENTS) + 50
    with gunicorn("api.wsgi:app", url) as port:
        api = f"http://127.0.0.1:{port}/api/v1"
        class_ids, roster = _school(api, headers, STUDENTS)
        exam_id = _exam(api, headers, class_ids)
        own = []
        for class_id in class_ids:
            slips = requests.post(f"{api}/classes/{class_id}/student-signins", json={}, headers=headers)
            slips.raise_for_status()
            for slip in slips.json()["slips"]:
                signed = requests.post(f"{api}/auth/student", json={"class_id": class_id,
                                                                     "roll_number": slip["roll_number"], "pin": slip["pin"]})
                signed.raise_for_status()
                path = f"/api/v1/students/{slip['student_id']}/exams/{exam_id}/answers"
                own.append(({"Authorization": f"Bearer {signed.json()['token']}"}, _answers(path, per_client)))
        students = run_load("127.0.0.1", port, None, clients=len(own), seconds=SECONDS, headers={}, own=own,
                            max_requests=len(own) * (per_client - 1))
        by_class = {c: [s["id"] for s in roster if s["class_id"] == c] for c in class_ids}
        batch_path = f"/api/v1/assessments/{exam_id}/answers"
        teacher = [({}, _batches(batch_path, class_ids[n % len(class_ids)], by_class[class_ids[n % len(class_ids)]],
                                 per_client)) for n in range(len(own))]
        baseline = run_load("127.0.0.1", port, None, clients=len(teacher), seconds=SECONDS, headers=headers,
                            own=teacher, max_requests=len(teacher) * (per_client - 1))
    assert set(students.statuses) == {201}, students.statuses
    assert set(baseline.statuses) == {201}, baseline.statuses
    print(f"   students: {students.requests} answers in {students.seconds:.1f} s by {len(own)} students, "
          f"p99 {students.percentile(0.99) * 1000:.0f} ms; one-answer batches: {baseline.rate:.0f}/s "
          f"p99 {baseline.percentile(0.99) * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}", flush=True)
    return figure(students.rate, "answers/s", baseline.rate, ">= 1,500/s with 200 students",
                  students=len(own), p99_ms=round(students.percentile(0.99) * 1000, 1),
                  baseline_p99_ms=round(baseline.percentile(0.99) * 1000, 1), load_average=round(os.getloadavg()[0], 1))


def _load_answers(url: str, exam_id: int) -> int:
    """Every student answers every question (a mix of right and wrong), loaded in one statement."""
    with connect(url) as conn:
        inserted = conn.execute(
            """INSERT INTO exam_answers (assessment_id, class_id, student_id, item_id, answer, answer_id)
               SELECT %s, st.class_id, st.id, i.id, (ARRAY['a','b','c','d'])[1 + (st.id + i.position) %% 4],
                      gen_random_uuid()
                 FROM students st CROSS JOIN assessment_items i WHERE i.assessment_id = %s""",
            (exam_id, exam_id)).rowcount
        conn.execute("ANALYZE exam_answers")
        conn.commit()
    return inserted


def close_to_results(url: str) -> dict:
    key = admin_key(url)
    headers = {"Authorization": f"Bearer {key}"}
    with gunicorn("api.wsgi:app", url) as port:
        api = f"http://127.0.0.1:{port}/api/v1"
        class_ids, _ = _school(api, headers, CLOSE_STUDENTS)
        exam_id = _exam(api, headers, class_ids)
        baseline_exam = _exam(api, headers, class_ids)
        answers = _load_answers(url, exam_id)
        _load_answers(url, baseline_exam)

        started = time.monotonic()
        closed = requests.post(f"{api}/assessments/{exam_id}/close", headers=headers, timeout=600)
        closed.raise_for_status()
        listed, cursor = 0, None
        while True:
            page = requests.get(f"{api}/assessments/{exam_id}/results", headers=headers, timeout=600,
                                params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
            page.raise_for_status()
            listed += sum(1 for r in page.json()["items"] if r["status"] == "assessed")
            if not (cursor := page.json()["next_cursor"]):
                break
        seconds = time.monotonic() - started
    assert closed.json()["answers_graded"] == answers and listed == CLOSE_STUDENTS, (closed.json(), listed)

    from fieldpipe.assessments import aggregate

    with connect(url) as conn:
        conn.execute("UPDATE exam_answers SET marks = NULL, graded_key = NULL WHERE assessment_id = %s",
                     (baseline_exam,))
        conn.commit()
        started = time.monotonic()
        end = conn.execute("SELECT now() + interval '1 second' AS t").fetchone()["t"]
        aggregate.grade_exam_answers(conn, end)
        aggregate.summarize_interval(conn, end - dt.timedelta(days=1), end)
        baseline = time.monotonic() - started
    print(f"   close + {listed} results read: {seconds:.1f} s ({answers} answers); daily grading + summary: "
          f"{baseline:.1f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    return figure(seconds, "s", baseline, "<= 30 s for 100,000 answers of 5,000 students", higher_is_better=False,
                  answers=answers, students=CLOSE_STUDENTS, load_average=round(os.getloadavg()[0], 1))


def run() -> dict:
    with throwaway_database() as url:
        ingest = answers_ingest(url)
    with throwaway_database() as url:
        close = close_to_results(url)
    return {"exam_answers_ingest": ingest, "exam_close_to_results": close}
