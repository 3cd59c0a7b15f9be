-- Per assessment × item, for every class, school, block and district: students assessed, present and
-- passing, mean and median marks and the grade distribution, from the per-class histogram of marks
-- (effective_counts). The median is the mean of the values at positions div(n + 1, 2) and div(n, 2) + 1 of
-- the sorted marks, read off the running count: the same number percentile_cont(0.5) gives.
-- Each row of a level is keyed by integers: level_bits (0 class, 1 school, 3 block, 7 district) and
-- entity_id (the class, school, block or district number).
INSERT INTO assessment_summaries (summary_date, assessment_id, level, entity, item_id, district, block, school_id,
                                  class_id, students_assessed, students_present, students_passing, mean_marks,
                                  median_marks, grade_distribution)
WITH schools_values AS MATERIALIZED (
    SELECT assessment_id, item_id, district_no, block_no, school_id, marks, grade, sum(assessed) AS assessed,
           sum(present) AS present, sum(passing) AS passing, sum(marked) AS marked
      FROM effective_counts GROUP BY assessment_id, item_id, district_no, block_no, school_id, marks, grade
), blocks_values AS MATERIALIZED (
    SELECT assessment_id, item_id, district_no, block_no, marks, grade, sum(assessed) AS assessed,
           sum(present) AS present, sum(passing) AS passing, sum(marked) AS marked
      FROM schools_values GROUP BY assessment_id, item_id, district_no, block_no, marks, grade
), per_value AS MATERIALIZED (
    -- each level rolled up from the one below: classes -> schools -> blocks -> districts
    SELECT assessment_id, item_id, 0 AS level_bits, class_id AS entity_id, district_no, block_no, school_id,
           class_id, marks, grade, assessed, present, passing, marked
      FROM effective_counts
    UNION ALL
    SELECT assessment_id, item_id, 1, school_id, district_no, block_no, school_id, NULL, marks, grade, assessed,
           present, passing, marked
      FROM schools_values
    UNION ALL
    SELECT assessment_id, item_id, 3, block_no, district_no, block_no, NULL, NULL, marks, grade, assessed,
           present, passing, marked
      FROM blocks_values
    UNION ALL
    SELECT assessment_id, item_id, 7, district_no, district_no, NULL, NULL, NULL, marks, grade, sum(assessed),
           sum(present), sum(passing), sum(marked)
      FROM blocks_values GROUP BY assessment_id, item_id, district_no, marks, grade
), running AS (
    SELECT *, sum(marked) OVER (PARTITION BY assessment_id, item_id, level_bits, entity_id
                                ORDER BY marks ROWS UNBOUNDED PRECEDING) AS marked_so_far,
              sum(marked) OVER (PARTITION BY assessment_id, item_id, level_bits, entity_id) AS marked_total
      FROM per_value
), levels AS (
    SELECT assessment_id, item_id, level_bits, entity_id, min(district_no) AS district_no, min(block_no) AS block_no,
           min(school_id) AS school_id, min(class_id) AS class_id,
           sum(assessed) AS assessed, sum(present) AS present, sum(passing) AS passing,
           round(sum(marks * marked) / NULLIF(sum(marked), 0), 2) AS mean_marks,
           round((min(marks) FILTER (WHERE marked_so_far >= div(marked_total + 1, 2))
                  + min(marks) FILTER (WHERE marked_so_far >= div(marked_total, 2) + 1)) / 2, 2) AS median_marks
      FROM running
     GROUP BY assessment_id, item_id, level_bits, entity_id
), grades AS (
    SELECT assessment_id, item_id, level_bits, entity_id, jsonb_object_agg(grade, assessed) AS distribution
      FROM (SELECT assessment_id, item_id, level_bits, entity_id, grade, sum(assessed) AS assessed
              FROM per_value WHERE grade IS NOT NULL
             GROUP BY assessment_id, item_id, level_bits, entity_id, grade) per_grade
     GROUP BY assessment_id, item_id, level_bits, entity_id
)
SELECT %(summary_date)s::date, l.assessment_id,
       CASE l.level_bits WHEN 0 THEN 'class' WHEN 1 THEN 'school' WHEN 3 THEN 'block' ELSE 'district' END,
       CASE l.level_bits WHEN 0 THEN l.class_id::text WHEN 1 THEN p.udise
                         WHEN 3 THEN d.district || '/' || b.block ELSE d.district END,
       l.item_id, d.district, b.block, l.school_id, l.class_id,
       l.assessed, l.present, l.passing, l.mean_marks, l.median_marks, COALESCE(g.distribution, '{}')
  FROM levels l
  JOIN (SELECT DISTINCT district_no, district FROM places) d ON d.district_no = l.district_no
  LEFT JOIN (SELECT DISTINCT block_no, block FROM places) b ON b.block_no = l.block_no
  LEFT JOIN places p ON p.school_id = l.school_id
  LEFT JOIN grades g ON g.assessment_id = l.assessment_id AND g.item_id = l.item_id
                    AND g.level_bits = l.level_bits AND g.entity_id = l.entity_id
