-- An interval's summaries are replaced as a whole: delete, then insert, in one transaction.
DELETE FROM assessment_summaries WHERE summary_date = %(summary_date)s
