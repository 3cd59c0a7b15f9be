"""Batched SMS through an outbox: enqueue (deduplicated), claim, send at a bounded rate, record, retry.

Modules: `outbox` (the table and its state machine), `providers` (file, AWS SNS, Twilio), `ratelimit`
(token bucket), `segments` (GSM-7/UCS-2 counting), `receipts` (respondent receipts at ingestion),
`dispatch` (the loop the `send_sms` DAG and `fieldpipe sms dispatch` run). See docs/sms.md.
"""
