"""Batched SMS through an outbox: enqueue (deduplicated), claim, send at a bounded rate, record, retry.

Modules: `outbox` (the table and its state machine), `providers` (file, AWS SNS, Twilio), `ratelimit`
(token bucket), `segments` (GSM-7/UCS-2 counting), `receipts` (respondent receipts at ingestion),
`dispatch` (the loop the `send_sms` DAG and `fieldpipe sms dispatch` run). See docs/sms.md.
"""

# Producers that enqueue messages from an Airflow task list this asset in the task's outlets, so the
# `send_sms` DAG runs at once instead of waiting for its next minute.
SMS_OUTBOX_ASSET = "fieldpipe.sms_outbox"
# One slot: one dispatcher at a time, so the per-provider rate held by its token bucket is the real rate.
SMS_POOL = "sms"
