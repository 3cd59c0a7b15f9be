"""Operations: what tells a person that something needs them, and what the system says about its own health.

- `notices`: one notice per incident to an organization's operators, by signed webhook and by mail,
  recorded and retried; the recipients (PUT /api/v1/notices/recipients).
- `backlog`: the age of the oldest pending SMS, webhook delivery, unexported and unvalidated response,
  per organization, against configured thresholds (the `operations` DAG, `/metrics`).
- `digest`: each organization's daily list of what failed, with counts and where to retry it.
"""
