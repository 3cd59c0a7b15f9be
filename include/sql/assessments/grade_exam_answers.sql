-- Grade exam answers received before the end of the data interval against their questions' answer keys
-- (of every exam, or of one when assessment_id is given: closing an exam, correcting its key).
-- Only answers not yet graded against the current key are touched, so a rerun changes nothing
-- and a corrected answer key regrades exactly the affected answers.
UPDATE exam_answers x
   SET marks = CASE WHEN x.answer = i.answer_key THEN i.max_marks ELSE 0 END,
       graded_key = i.answer_key
  FROM assessment_items i
 WHERE i.id = x.item_id
   AND i.assessment_id = x.assessment_id
   AND x.received_at < %(interval_end)s
   AND (%(assessment_id)s::bigint IS NULL OR x.assessment_id = %(assessment_id)s::bigint)
   AND x.graded_key IS DISTINCT FROM i.answer_key
