"""Batched SMS through an outbox: enqueue (deduplicated), claim, send at a bounded rate, record, retry.

Modules: `outbox` (the table and its state machine), `providers` (file, AWS SNS, Twilio), `segments`
(GSM-7/UCS-2 counting), `receipts` (respondent receipts at ingestion), `dispatch` (the loop the `send_sms`
DAG and `fieldpipe sms dispatch` run, paced by `fieldpipe.ratelimit`). Settings: `fieldpipe.config.SmsSettings`.
See docs/sms.md.
"""
