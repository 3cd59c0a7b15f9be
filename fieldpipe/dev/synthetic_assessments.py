"""Synthetic school data made in the database with generate_series (for the benchmark and the backfill test).

Every assessment applies to every class; each student gets one current mark per item, received on one
of `days` days from `start`, and every tenth student also an earlier mark that the later one superseded,
so summaries of different days differ and exercise the validity ranges.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from fieldpipe.orgs import ensure_organization


@dataclass(frozen=True)
class Shape:
    districts: int = 2
    blocks_per_district: int = 2
    schools_per_block: int = 2
    classes_per_school: int = 2
    students_per_class: int = 5
    assessments: int = 2
    items_per_assessment: int = 3

    @property
    def schools(self) -> int:
        return self.districts * self.blocks_per_district * self.schools_per_block

    @property
    def classes(self) -> int:
        return self.schools * self.classes_per_school

    @property
    def students(self) -> int:
        return self.classes * self.students_per_class

    @property
    def current_marks(self) -> int:
        return self.students * self.assessments * self.items_per_assessment


def generate(conn: psycopg.Connection, shape: Shape, start: dt.datetime, days: int, org_slug: str = "synthetic") -> int:
    """Create the roster, assessments and marks; return the number of student_marks rows written."""
    organization_id = ensure_organization(conn, org_slug)
    p = {"org": organization_id, "districts": shape.districts, "blocks": shape.blocks_per_district,
         "schools": shape.schools_per_block, "classes": shape.classes_per_school,
         "students": shape.students_per_class, "assessments": shape.assessments,
         "items": shape.items_per_assessment, "start": start, "days": days}
    conn.execute(
        """INSERT INTO schools (organization_id, udise, name, district, block)
           SELECT %(org)s, '9' || lpad(n::text, 10, '0'), 'School ' || n,
                  'District ' || (n - 1) / (%(blocks)s * %(schools)s),
                  'Block ' || ((n - 1) / %(schools)s) %% %(blocks)s
             FROM generate_series(1, %(districts)s * %(blocks)s * %(schools)s) n""", p)
    conn.execute(
        """INSERT INTO classes (school_id, grade, section)
           SELECT s.id, 1 + g, 'A' FROM schools s, generate_series(0, %(classes)s - 1) g
            WHERE s.organization_id = %(org)s""", p)
    conn.execute(
        """INSERT INTO students (class_id, roll_number, name)
           SELECT c.id, r::text, 'Student ' || r FROM classes c JOIN schools s ON s.id = c.school_id,
                  generate_series(1, %(students)s) r
            WHERE s.organization_id = %(org)s""", p)
    conn.execute(
        """INSERT INTO enrollments (student_id, school_id, class_id, started_on, started_by)
           SELECT st.id, c.school_id, st.class_id, NULL, 'roster'
             FROM students st JOIN classes c ON c.id = st.class_id JOIN schools s ON s.id = c.school_id
            WHERE s.organization_id = %(org)s""", p)
    conn.execute(
        """INSERT INTO assessments (organization_id, title, type, evaluation, outcome, submission_level,
                                    grade_scale, pass_criterion)
           SELECT %(org)s, 'Assessment ' || n, 'LO', 'Marks', 'TSP', 'student',
                  '[{"grade":"A","min_percent":80},{"grade":"B","min_percent":50},{"grade":"C","min_percent":33},{"grade":"D","min_percent":0}]',
                  '{"min_percent": 33}'
             FROM generate_series(1, %(assessments)s) n""", p)
    conn.execute(
        """INSERT INTO assessment_items (assessment_id, position, key, label, max_marks, pass_marks)
           SELECT a.id, i, 'LO' || i, 'Learning outcome ' || i, 5 + i %% 6, (5 + i %% 6) * 0.33
             FROM assessments a, generate_series(1, %(items)s) i WHERE a.organization_id = %(org)s""", p)
    conn.execute(
        """INSERT INTO assessment_grades (assessment_id, grade, rank, min_percent, passing)
           SELECT a.id, g.grade, g.rank, g.min_percent, true
             FROM assessments a, (VALUES ('A', 1, 80), ('B', 2, 50), ('C', 3, 33), ('D', 4, 0)) g(grade, rank, min_percent)
            WHERE a.organization_id = %(org)s""", p)
    conn.execute(
        """INSERT INTO assessment_classes (assessment_id, class_id)
           SELECT a.id, c.id FROM assessments a, classes c JOIN schools s ON s.id = c.school_id
            WHERE a.organization_id = %(org)s AND s.organization_id = %(org)s""", p)
    # One current mark per (student, item); every tenth student also has an earlier, superseded one.
    return conn.execute(
        """WITH pairs AS (
               SELECT st.id AS student_id, st.class_id, i.assessment_id, i.id AS item_id, i.max_marks,
                      (st.id + i.id) %% 20 = 0 AS absent,
                      (st.id * 31 + i.id * 17) %% (i.max_marks::int + 1) AS marks,
                      %(start)s::timestamptz + ((st.id + i.id * 3) %% %(days)s) * interval '1 day'
                                             + (st.id %% 86400) * interval '1 second' AS received_at
                 FROM students st
                 JOIN classes c ON c.id = st.class_id JOIN schools s ON s.id = c.school_id
                 JOIN assessment_items i ON i.assessment_id IN (SELECT id FROM assessments WHERE organization_id = %(org)s)
                WHERE s.organization_id = %(org)s
           ), versions AS (
               SELECT student_id, class_id, assessment_id, item_id, max_marks, absent, marks, received_at,
                      NULL::timestamptz AS superseded_at FROM pairs
               UNION ALL
               SELECT student_id, class_id, assessment_id, item_id, max_marks, false, (marks + 1) %% (max_marks::int + 1),
                      received_at - interval '1 day', received_at FROM pairs WHERE student_id %% 10 = 0
           )
           INSERT INTO student_marks (submission_pk, assessment_id, class_id, student_id, item_id, is_present, marks,
                                      grade, received_at, superseded_at)
           SELECT 0, assessment_id, class_id, student_id, item_id, NOT absent,
                  CASE WHEN absent THEN NULL ELSE marks END,
                  CASE WHEN absent THEN NULL WHEN marks * 100 >= 80 * max_marks THEN 'A'
                       WHEN marks * 100 >= 50 * max_marks THEN 'B' WHEN marks * 100 >= 33 * max_marks THEN 'C'
                       ELSE 'D' END,
                  received_at, superseded_at
             FROM versions""", p).rowcount
