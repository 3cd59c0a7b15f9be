"""Daily summaries: hand-computed numbers at every level, history respected, anomalies reported and not
counted, exam grading, and a 30-day backfill run twice giving byte-identical tables."""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from fieldpipe.assessments import aggregate, definitions, roster, submissions
from fieldpipe.dev import synthetic_assessments as synthetic
from fieldpipe.orgs import ensure_organization

DAY = dt.timedelta(days=1)


def _batch(class_id, key, entries):
    return {"submission_id": str(uuid.uuid4()), "class_id": class_id, "submitted_at": "2026-11-20T10:00:00+05:30",
            "collector": {"id": "teacher"}, key: entries}


@pytest.fixture
def district(conn):
    """District Shimla: block Mashobra (school S1, classes 5A and 5B), block Theog (school S2, class 5A).
    LO assessment, LO1 out of 10, pass at 40% (4 marks), grades A >= 80%, B >= 50%, C below."""
    org = ensure_organization(conn, "edu")
    roster.create_school(conn, org, {"udise": "02010100101", "name": "S1", "district": "Shimla", "block": "Mashobra"})
    roster.create_school(conn, org, {"udise": "02010200201", "name": "S2", "district": "Shimla", "block": "Theog"})
    c1 = roster.create_class(conn, org, "02010100101", {"grade": 5, "section": "A"})["id"]
    c2 = roster.create_class(conn, org, "02010100101", {"grade": 5, "section": "B"})["id"]
    c3 = roster.create_class(conn, org, "02010200201", {"grade": 5, "section": "A"})["id"]

    def students(class_id, names):
        imported = roster.import_students(conn, org, class_id, [{"roll_number": str(i), "name": n}
                                                                 for i, n in enumerate(names, 1)])
        return [s["id"] for s in imported["students"]]

    ids = {"a": students(c1, "abc"), "b": students(c2, "de"), "c": students(c3, "f")}
    assessment = definitions.create_assessment(conn, org, {
        "title": "LO", "type": "LO", "evaluation": "Marks", "outcome": "TSP",
        "items": [{"key": "LO1", "max_marks": 10}],
        "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 50},
                        {"grade": "C", "min_percent": 0}],
        "pass_criterion": {"min_percent": 40}, "class_ids": [c1, c2, c3]})
    return {"org": org, "assessment": assessment["id"], "classes": (c1, c2, c3), "students": ids}


def _post_marks(conn, d, class_id, marks_by_student):
    entries = [{"student_id": s, "is_present": m is not None, **({"marks": {"LO1": m}} if m is not None else {})}
               for s, m in marks_by_student.items()]
    submissions.submit_student_marks(conn, d["org"], d["assessment"], _batch(class_id, "entries", entries))


def _now(conn) -> dt.datetime:
    return conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]


def _rows(conn, level):
    return {r["entity"]: (r["students_assessed"], r["students_present"], r["students_passing"], r["mean_marks"],
                          r["median_marks"], r["grade_distribution"])
            for r in conn.execute("SELECT * FROM assessment_summaries WHERE level = %s", (level,))}


def _mark_the_hand_count(conn, d) -> dt.datetime:
    """The marks every level's hand count below is made from; returns the end of the day that counts them."""
    c1, c2, c3 = d["classes"]
    a, b, c = d["students"]["a"], d["students"]["b"], d["students"]["c"]
    _post_marks(conn, d, c1, {a[0]: 9, a[1]: 4, a[2]: None})   # A pass, C pass (4 >= 4), absent
    _post_marks(conn, d, c2, {b[0]: 3, b[1]: 8})               # C fail, A pass
    _post_marks(conn, d, c3, {c[0]: 7})                        # B pass
    return _now(conn) + DAY


def test_summary_numbers_at_every_level_match_a_hand_count(conn, district):
    c1, c2, c3 = district["classes"]
    end = _mark_the_hand_count(conn, district)
    aggregate.summarize_interval(conn, end - DAY, end)

    assert _rows(conn, "class") == {
        str(c1): (3, 2, 2, Decimal("6.50"), Decimal("6.50"), {"A": 1, "C": 1}),
        str(c2): (2, 2, 1, Decimal("5.50"), Decimal("5.50"), {"A": 1, "C": 1}),
        str(c3): (1, 1, 1, Decimal("7.00"), Decimal("7.00"), {"B": 1}),
    }
    assert _rows(conn, "school") == {
        "02010100101": (5, 4, 3, Decimal("6.00"), Decimal("6.00"), {"A": 2, "C": 2}),   # marks 9, 4, 3, 8
        "02010200201": (1, 1, 1, Decimal("7.00"), Decimal("7.00"), {"B": 1}),
    }
    assert set(_rows(conn, "block")) == {"Shimla/Mashobra", "Shimla/Theog"}
    assert _rows(conn, "district") == {"Shimla": (6, 5, 4, Decimal("6.20"), Decimal("7.00"), {"A": 2, "B": 1, "C": 2})}

    body = aggregate.read_summary(conn, district["org"], district["assessment"], "school")
    assert [(r["school"], r["item"], r["students_passing"], r["passing_rate"]) for r in body["rows"]] == [
        ("02010100101", "LO1", 3, 0.75), ("02010200201", "LO1", 1, 1.0)]


def test_a_past_day_keeps_its_numbers_after_a_correction_and_reruns_replace(conn, district):
    c1 = district["classes"][0]
    a = district["students"]["a"]
    _post_marks(conn, district, c1, {a[0]: 2, a[1]: 9})
    between = _now(conn)
    _post_marks(conn, district, c1, {a[0]: 6})                       # corrected the next "day"
    aggregate.summarize_interval(conn, between - DAY, between)
    aggregate.summarize_interval(conn, between, between + DAY)
    aggregate.summarize_interval(conn, between, between + DAY)       # a rerun replaces, never adds
    by_day = {r["summary_date"]: (r["students_passing"], r["mean_marks"]) for r in conn.execute(
        "SELECT * FROM assessment_summaries WHERE level = 'class'")}
    assert by_day == {(between - DAY).date(): (1, Decimal("5.50")), between.date(): (2, Decimal("7.50"))}


def test_data_that_slipped_in_is_reported_and_never_counted(conn, district):
    c1, c2, _ = district["classes"]
    a = district["students"]["a"]
    _post_marks(conn, district, c1, {a[0]: 9})
    item = conn.execute("SELECT id FROM assessment_items").fetchone()["id"]
    conn.execute("""INSERT INTO student_marks (submission_pk, assessment_id, class_id, student_id, item_id, is_present, marks)
                    VALUES (0, %s, %s, %s, %s, true, 99)""", (district["assessment"], c1, a[1], item))
    conn.execute("""INSERT INTO student_marks (submission_pk, assessment_id, class_id, student_id, item_id, is_present, marks)
                    VALUES (0, %s, %s, %s, %s, true, 5)""", (district["assessment"], c2, a[2], item))
    end = _now(conn) + DAY
    # what the DAG's report_anomalies task runs
    reported = conn.execute(aggregate.sql("anomalies"), {"interval_end": end}).fetchall()
    assert {r["kind"]: r["rows"] for r in reported} == {"marks_above_max": 1, "student_of_another_class": 1}
    aggregate.summarize_interval(conn, end - DAY, end)
    assert _rows(conn, "class")[str(c1)][:3] == (1, 1, 1)
    assert str(c2) not in _rows(conn, "class")


def test_exam_answers_are_graded_against_the_key_latest_answer_counting(conn, district, caplog):
    caplog.set_level("INFO", logger="fieldpipe.assessments")
    c1 = district["classes"][0]
    a = district["students"]["a"]
    exam = definitions.create_assessment(conn, district["org"], {
        "title": "Exam", "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
        "items": [{"key": "q1", "max_marks": 2, "choices": ["a", "b"], "answer_key": "b"}],
        "pass_criterion": {"min_percent": 50}, "class_ids": [c1]})

    def answer(student, choice):
        submissions.submit_exam_answers(conn, district["org"], exam["id"], _batch(
            c1, "answers", [{"student_id": student, "question": "q1", "answer": choice}]))

    before = _now(conn)
    answer(a[0], "a")
    answer(a[1], "a")
    answer(a[0], "b")                                                  # changed their mind: now right
    end = _now(conn) + DAY
    assert aggregate.grade_exam_answers(conn, before) == 0            # none received before that
    assert aggregate.grade_exam_answers(conn, end) == 3
    assert aggregate.grade_exam_answers(conn, end) == 0               # a rerun grades nothing again
    assert caplog.messages[-2:] == [f"graded 3 exam answers received before {end.isoformat()}",
                                    f"graded 0 exam answers received before {end.isoformat()}"]
    aggregate.summarize_interval(conn, end - DAY, end)
    row = conn.execute("SELECT * FROM assessment_summaries WHERE assessment_id = %s AND level = 'class'",
                       (exam["id"],)).fetchone()
    assert (row["students_assessed"], row["students_passing"], row["mean_marks"]) == (2, 1, Decimal("1.00"))
    answer(a[1], "b")
    assert aggregate.grade_exam_answers(conn, end, exam["id"] + 1) == 0  # another exam's: none
    assert aggregate.grade_exam_answers(conn, end, exam["id"]) == 1
    assert caplog.messages[-1] == f"graded 1 exam answers received before {end.isoformat()} of exam {exam['id']}"


def _dump(conn) -> bytes:
    with conn.cursor().copy("COPY (SELECT * FROM assessment_summaries ORDER BY summary_date, assessment_id, level, "
                            "entity, item_id) TO STDOUT") as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def test_a_30_day_backfill_run_twice_leaves_byte_identical_summaries(conn):
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    synthetic.generate(conn, synthetic.Shape(), start, days=30)

    def backfill():
        for day in range(30):
            aggregate.summarize_interval(conn, start + day * DAY, start + (day + 1) * DAY)
        return _dump(conn)

    first = backfill()
    second = backfill()
    assert first == second
    per_day = conn.execute("""SELECT summary_date, sum(students_assessed) AS n FROM assessment_summaries
                               WHERE level = 'class' GROUP BY summary_date ORDER BY summary_date""").fetchall()
    assert len(per_day) == 30 and per_day[0]["n"] < per_day[-1]["n"]  # the days really differ

    # The histogram's mean and median agree with avg and percentile_cont over the raw current marks.
    direct = {(r["udise"], r["item_id"]): (r["mean"], r["median"]) for r in conn.execute(
        """SELECT s.udise, m.item_id, round(avg(m.marks), 2) AS mean,
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m.marks)::numeric, 2) AS median
             FROM student_marks m JOIN classes c ON c.id = m.class_id JOIN schools s ON s.id = c.school_id
            WHERE m.superseded_at IS NULL GROUP BY s.udise, m.item_id""")}
    summarized = {(r["entity"], r["item_id"]): (r["mean_marks"], r["median_marks"]) for r in conn.execute(
        "SELECT * FROM assessment_summaries WHERE level = 'school' AND summary_date = %s",
        ((start + 29 * DAY).date(),))}
    assert summarized == direct and len(direct) == 8 * 6


def test_the_demo_school_has_an_assessment_with_marks_and_tsp_per_learning_outcome(conn):
    from fieldpipe.dev.demo import load_demo

    org = load_demo(conn)
    load_demo(conn)  # loading again changes nothing
    assert conn.execute("SELECT count(*) AS n FROM assessment_submissions WHERE kind = 'student'").fetchone()["n"] == 1
    assessment = conn.execute("SELECT id FROM assessments WHERE organization_id = %s ORDER BY id LIMIT 1", (org,)).fetchone()["id"]
    # The demo marks count from the day the teacher submitted them, so a day the scheduler catches up on
    # after `make up` already shows them (no waiting for today's interval to end).
    day_after_submission = dt.datetime(2026, 11, 3, tzinfo=dt.timezone.utc)
    aggregate.summarize_interval(conn, day_after_submission, day_after_submission + DAY)
    body = aggregate.read_summary(conn, org, assessment, "class")
    assert body["date"] == dt.date(2026, 11, 3)
    # LO1 /10 pass 4: 9, 6, 3, 10, 5 -> 4 of 5 present; LO2 /5 pass 2: 4, 2, 1, 5, 3 -> 4; LO3: 5, 3, 4, 5, 1 -> 4
    assert [(r["item"], r["students_assessed"], r["students_present"], r["students_passing"]) for r in body["rows"]] == [
        ("LO1", 6, 5, 4), ("LO2", 6, 5, 4), ("LO3", 6, 5, 4)]


def failed_summary_checks(conn, summary_date) -> list[str]:
    """The DAG's check_summary_rows for one day, run as common-sql's SQLTableCheckOperator runs it."""
    failed = []
    for name, check in aggregate.summary_checks().items():
        row = conn.execute(f"""SELECT min(ok) AS ok FROM (
                                   SELECT CASE WHEN {check['check_statement']} THEN 1 ELSE 0 END AS ok
                                     FROM assessment_summaries WHERE summary_date = %s) checked""",
                           (summary_date,)).fetchone()
        if row["ok"] != 1:
            failed.append(name)
    return failed


def test_the_summary_check_passes_a_true_day_and_an_empty_one_and_fails_a_roll_up_that_loses_a_class(conn, district):
    end = _mark_the_hand_count(conn, district)
    aggregate.summarize_interval(conn, end - DAY, end)
    day = (end - DAY).date()
    assert failed_summary_checks(conn, day) == []
    assert failed_summary_checks(conn, day - DAY) == []  # no rows that day
    # a school that lost class 5B in its roll-up: 3 assessed instead of 5, 2 present instead of 4, 2 passing of 3
    conn.execute("""UPDATE assessment_summaries SET students_assessed = 3, students_present = 2, students_passing = 2
                     WHERE level = 'school' AND entity = '02010100101'""")
    assert failed_summary_checks(conn, day) == ["students_assessed_same_at_every_level",
                                                "students_present_same_at_every_level",
                                                "students_passing_same_at_every_level"]
    conn.execute("""UPDATE assessment_summaries SET students_assessed = 5, students_present = 4
                     WHERE level = 'school' AND entity = '02010100101'""")
    assert failed_summary_checks(conn, day) == ["students_passing_same_at_every_level"]


def test_a_summary_reads_back_every_field_of_its_rows_and_a_bad_level_or_date_is_refused(conn, district):
    from fieldpipe.problems import Problem

    c1, c2, c3 = district["classes"]
    a = district["students"]["a"]
    _post_marks(conn, district, c1, {a[0]: 9, a[1]: 4, a[2]: None})
    end = _now(conn) + DAY
    aggregate.summarize_interval(conn, end - DAY, end)
    day = (end - DAY).date()
    body = aggregate.read_summary(conn, district["org"], district["assessment"], "class", day.isoformat())
    assert (body["assessment_id"], body["level"], body["date"]) == (district["assessment"], "class", day)
    assert body["rows"] == [{
        "district": "Shimla", "block": "Mashobra", "school": "02010100101", "school_name": "S1",
        "class": {"id": c1, "grade": 5, "section": "A"}, "item": "LO1", "item_label": "LO1",
        "students_assessed": 3, "students_present": 2, "students_passing": 2, "passing_rate": 1.0,
        "mean_marks": Decimal("6.50"), "median_marks": Decimal("6.50"), "grade_distribution": {"A": 1, "C": 1}}]
    district_row = aggregate.read_summary(conn, district["org"], district["assessment"], "district")["rows"][0]
    assert (district_row["block"], district_row["school"], district_row["class"]) == (None, None, None)

    with pytest.raises(Problem) as refused:
        aggregate.read_summary(conn, district["org"], district["assessment"], "state", "20-11-2026")
    assert [(e.field, e.code, e.message) for e in refused.value.errors] == [
        ("level", "enum", "must be one of class, school, block, district"),
        ("date", "date", "must be a date YYYY-MM-DD")]


def test_a_days_run_says_what_it_wrote_and_its_summary_tab_has_every_row_top_down(conn, district, tmp_path,
                                                                                  monkeypatch, caplog):
    from openpyxl import load_workbook

    from fieldpipe.assessments import export

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    caplog.set_level("INFO", logger="fieldpipe.assessments")
    end = _mark_the_hand_count(conn, district)
    day = (end - DAY).date()
    first = aggregate.summarize_interval(conn, end - DAY, end)
    assert first == {"summary_date": day.isoformat(), "students_counted": 6, "rows_replaced": 0, "rows_written": 8,
                     "per_level": {"class": 3, "school": 2, "block": 2, "district": 1}}
    assert aggregate.summarize_interval(conn, end - DAY, end)["rows_replaced"] == 8
    prefix = f"summaries for {day.isoformat()}: 6 student results counted -> 8 summary rows "
    [said] = [m for m in caplog.messages if m.startswith(prefix) and m.endswith(" (replaced 8)")]
    assert ast.literal_eval(said[len(prefix):-len(" (replaced 8)")]) == first["per_level"]  # in any order

    assert export.export_summaries(conn, day, None) == {}  # the assessment names no sheet yet
    assert f"Summary tabs for {day.isoformat()}: no assessment names a sheet" in caplog.messages
    definitions.update_assessment(conn, district["org"], district["assessment"], {"sheet": {"spreadsheet_id": "lo"}})
    assert export.export_summaries(conn, day, None) == {district["assessment"]: 8}
    assert f"Summary tabs for {day.isoformat()}: assessment {district['assessment']}: 8 rows" in caplog.messages
    d = day.isoformat()
    expected = [  # district, blocks, schools, classes; marks 9, 4, absent | 3, 8 | 7; pass from 4
        (d, "district", "Shimla", None, None, None, "LO1", "LO1", 6, 5, 4, 0.8, 6.2, 7, "A:2 B:1 C:2"),
        (d, "block", "Shimla", "Mashobra", None, None, "LO1", "LO1", 5, 4, 3, 0.75, 6, 6, "A:2 C:2"),
        (d, "block", "Shimla", "Theog", None, None, "LO1", "LO1", 1, 1, 1, 1, 7, 7, "B:1"),
        (d, "school", "Shimla", "Mashobra", "02010100101", None, "LO1", "LO1", 5, 4, 3, 0.75, 6, 6, "A:2 C:2"),
        (d, "school", "Shimla", "Theog", "02010200201", None, "LO1", "LO1", 1, 1, 1, 1, 7, 7, "B:1"),
        (d, "class", "Shimla", "Mashobra", "02010100101", "5A", "LO1", "LO1", 3, 2, 2, 1, 6.5, 6.5, "A:1 C:1"),
        (d, "class", "Shimla", "Mashobra", "02010100101", "5B", "LO1", "LO1", 2, 2, 1, 0.5, 5.5, 5.5, "A:1 C:1"),
        (d, "class", "Shimla", "Theog", "02010200201", "5A", "LO1", "LO1", 1, 1, 1, 1, 7, 7, "B:1"),
    ]
    tab = load_workbook(tmp_path / "exports" / f"assessment-{district['assessment']}.xlsx")[export.SUMMARY_TAB]
    rows = list(tab.iter_rows(values_only=True))
    assert list(rows[0]) == export.HEADER and [tuple(r) for r in rows[1:]] == expected
    assert [type(v) for v in rows[1][12:14]] == [float, int]  # 6.2 a number, 7.00 a whole number
