-- What counted at the end of the data interval: the latest row per (assessment, item, student), or per
-- (assessment, item, class) for class-level results, counted per class and mark value (a histogram), so
-- every level's sums, mean, median and grades come from far fewer rows than there are marks.
-- Rows the API would have rejected (marks above the maximum, marks for a student of another class or
-- received after the student left, cleared above present, answers to questions not in the exam)
-- are left out here and reported by the DAG's checks on the assessment_anomalies view.
CREATE TEMP TABLE effective_counts ON COMMIT DROP AS
SELECT assessment_id, item_id, district_no, block_no, school_id, class_id, marks, grade,
       sum(assessed)::int AS assessed, sum(present)::int AS present, sum(passing)::int AS passing,
       count(marks)::int AS marked
  FROM (
    SELECT m.assessment_id, m.item_id, p.district_no, p.block_no, c.school_id, m.class_id,
           1 AS assessed,
           m.is_present::int AS present,
           (m.is_present AND CASE WHEN a.evaluation = 'Marks' THEN m.marks >= i.pass_marks ELSE g.passing END)::int AS passing,
           m.marks, m.grade
      FROM student_marks m
      JOIN assessments a ON a.id = m.assessment_id
      JOIN assessment_items i ON i.id = m.item_id AND i.assessment_id = m.assessment_id
      JOIN students st ON st.id = m.student_id
      JOIN classes c ON c.id = m.class_id
      JOIN places p ON p.school_id = c.school_id
      LEFT JOIN assessment_grades g ON g.assessment_id = m.assessment_id AND g.grade = m.grade
     -- The student was in the mark's class when it was received (a later transfer leaves the mark where it was).
     WHERE EXISTS (SELECT 1 FROM enrollments e
                    WHERE e.student_id = m.student_id AND e.class_id = m.class_id
                      AND (e.ended_on IS NULL OR m.received_at < (e.ended_on + 1)::timestamp AT TIME ZONE 'UTC'))
       AND m.received_at < %(interval_end)s
       AND (m.superseded_at IS NULL OR m.superseded_at >= %(interval_end)s)
       AND (st.deleted_at IS NULL OR st.deleted_at >= %(interval_end)s)
       AND (m.marks IS NULL OR m.marks BETWEEN 0 AND i.max_marks)
    UNION ALL
    SELECT r.assessment_id, r.item_id, p.district_no, p.block_no, c.school_id, r.class_id,
           r.students_present, r.students_present, r.students_cleared, NULL, NULL
      FROM class_results r
      JOIN assessment_items i ON i.id = r.item_id AND i.assessment_id = r.assessment_id
      JOIN classes c ON c.id = r.class_id
      JOIN places p ON p.school_id = c.school_id
     WHERE r.received_at < %(interval_end)s
       AND (r.superseded_at IS NULL OR r.superseded_at >= %(interval_end)s)
       AND r.students_cleared BETWEEN 0 AND r.students_present
    UNION ALL
    SELECT x.assessment_id, x.item_id, p.district_no, p.block_no, c.school_id, x.class_id,
           1, 1, (x.marks >= i.pass_marks)::int, x.marks, NULL
      FROM (SELECT DISTINCT ON (assessment_id, student_id, item_id) *
              FROM exam_answers
             WHERE received_at < %(interval_end)s
             ORDER BY assessment_id, student_id, item_id, received_at DESC, id DESC) x
      JOIN assessment_items i ON i.id = x.item_id AND i.assessment_id = x.assessment_id
      JOIN students st ON st.id = x.student_id
      JOIN classes c ON c.id = x.class_id
      JOIN places p ON p.school_id = c.school_id
     WHERE x.marks IS NOT NULL
       AND EXISTS (SELECT 1 FROM enrollments e
                    WHERE e.student_id = x.student_id AND e.class_id = x.class_id
                      AND (e.ended_on IS NULL OR x.received_at < (e.ended_on + 1)::timestamp AT TIME ZONE 'UTC'))
       AND (st.deleted_at IS NULL OR st.deleted_at >= %(interval_end)s)
       ) effective (assessment_id, item_id, district_no, block_no, school_id, class_id, assessed, present, passing,
                    marks, grade)
 GROUP BY assessment_id, item_id, district_no, block_no, school_id, class_id, marks, grade
