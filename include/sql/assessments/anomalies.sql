-- Data the API would have rejected that is in the tables anyway (it came by another path), as of the
-- end of the data interval. These rows are never counted in the summaries; this makes them visible.
SELECT kind, count(*) AS rows, count(DISTINCT assessment_id) AS assessments
  FROM assessment_anomalies
 WHERE received_at < %(interval_end)s
 GROUP BY kind
 ORDER BY kind
