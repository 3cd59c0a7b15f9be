-- Schools with small integer numbers for their district and block, so the roll-up sorts on integers.
CREATE TEMP TABLE places ON COMMIT DROP AS
SELECT s.id AS school_id, s.udise, s.district, s.block,
       dense_rank() OVER (ORDER BY s.district) AS district_no,
       dense_rank() OVER (ORDER BY s.district, s.block) AS block_no
  FROM schools s
