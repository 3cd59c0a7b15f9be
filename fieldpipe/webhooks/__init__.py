"""Outbound webhooks: registration, target checks (SSRF), signing, and a delivery outbox with retries.

- `targets`: which URLs a webhook may point at, checked on the resolved address at registration and again
  at every delivery (the connection is pinned to the address that was checked).
- `signing`: `Fieldpipe-Signature: t=<unix>,v1=<hex>` and `verify_signature` for receivers.
- `secret_box`: how signing secrets are kept at rest.
- `registry`: register, list and remove webhooks.
- `transport`: one bounded HTTP POST (total timeout, capped response read).
- `delivery`: the deliveries outbox: enqueue, claim, attempt, record, retry, circuit breaker, replay.
"""
