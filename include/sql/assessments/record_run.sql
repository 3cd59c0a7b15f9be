-- What the interval's run wrote, kept apart from the summaries so they stay byte-identical on rerun.
INSERT INTO assessment_summary_runs (summary_date, interval_start, interval_end, rows_written)
VALUES (%(summary_date)s, %(interval_start)s, %(interval_end)s, %(rows_written)s)
ON CONFLICT (summary_date) DO UPDATE
   SET interval_start = EXCLUDED.interval_start, interval_end = EXCLUDED.interval_end,
       rows_written = EXCLUDED.rows_written, computed_at = clock_timestamp()
