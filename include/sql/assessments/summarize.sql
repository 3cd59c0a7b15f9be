-- Per assessment × item: class, school, block and district rows in one sorted pass (ROLLUP),
-- with the grade distribution counted once per class and rolled up the same way.
INSERT INTO assessment_summaries (summary_date, assessment_id, level, entity, item_id, district, block, school_id,
                                  class_id, students_assessed, students_present, students_passing, mean_marks,
                                  median_marks, grade_distribution)
WITH levels AS MATERIALIZED (
    SELECT assessment_id, item_id, district_no, block_no, school_id, class_id,
           CASE WHEN GROUPING(class_id) = 0 THEN 'class' WHEN GROUPING(school_id) = 0 THEN 'school'
                WHEN GROUPING(block_no) = 0 THEN 'block' ELSE 'district' END AS level,
           sum(assessed) AS assessed, sum(present) AS present, sum(passing) AS passing,
           round(avg(marks), 2) AS mean_marks,
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY marks)::numeric, 2) AS median_marks
      FROM effective_results
     GROUP BY assessment_id, item_id, ROLLUP (district_no, block_no, school_id, class_id)
    HAVING GROUPING(district_no) = 0
), grade_levels AS MATERIALIZED (
    SELECT assessment_id, item_id, level, district_no, block_no, school_id, class_id,
           jsonb_object_agg(grade, n) AS distribution
      FROM (SELECT assessment_id, item_id, grade, district_no, block_no, school_id, class_id, sum(n) AS n,
                   CASE WHEN GROUPING(class_id) = 0 THEN 'class' WHEN GROUPING(school_id) = 0 THEN 'school'
                        WHEN GROUPING(block_no) = 0 THEN 'block' ELSE 'district' END AS level
              FROM (SELECT assessment_id, item_id, district_no, block_no, school_id, class_id, grade, count(*) AS n
                      FROM effective_results
                     WHERE grade IS NOT NULL
                     GROUP BY assessment_id, item_id, district_no, block_no, school_id, class_id, grade) per_class
             GROUP BY assessment_id, item_id, grade, ROLLUP (district_no, block_no, school_id, class_id)
            HAVING GROUPING(district_no) = 0) rolled
     GROUP BY assessment_id, item_id, level, district_no, block_no, school_id, class_id
)
SELECT %(summary_date)s::date, l.assessment_id, l.level,
       CASE l.level WHEN 'class' THEN l.class_id::text WHEN 'school' THEN p.udise
                    WHEN 'block' THEN d.district || '/' || b.block ELSE d.district END,
       l.item_id, d.district, b.block, l.school_id, l.class_id,
       l.assessed, l.present, l.passing, l.mean_marks, l.median_marks, COALESCE(g.distribution, '{}')
  FROM levels l
  JOIN (SELECT DISTINCT district_no, district FROM places) d ON d.district_no = l.district_no
  LEFT JOIN (SELECT DISTINCT block_no, block FROM places) b ON b.block_no = l.block_no
  LEFT JOIN places p ON p.school_id = l.school_id
  LEFT JOIN grade_levels g
    ON g.assessment_id = l.assessment_id AND g.item_id = l.item_id AND g.level = l.level
   AND g.district_no = l.district_no AND COALESCE(g.block_no, 0) = COALESCE(l.block_no, 0)
   AND COALESCE(g.school_id, 0) = COALESCE(l.school_id, 0) AND COALESCE(g.class_id, 0) = COALESCE(l.class_id, 0)
