"""The task kinds fieldpipe ships, registered like any other through the `fieldpipe.tasks` entry points.

- `sms_receipt`: an SMS to the respondent quoting their answers, once per response (fieldpipe/sms/receipts.py).
- `sheet_export`: the form's responses kept current in a Google Sheet or local workbook (fieldpipe/sheets/).
- `archive`: the form's daily Parquet archive (fieldpipe/reporting/archive.py, the `archive_responses` DAG).
- `rules`: the form's business rules (fieldpipe/rules/): warnings in the submit answer (sync), flags from the
  `validate_responses` pipeline (its async half).
- `webhook`: signed POSTs of `response.created` / `response.updated` (and the form's `flag.opened` /
  `flag.resolved`) to a URL, through the webhook deliveries outbox (fieldpipe/webhooks/).

Each puts its effect in an outbox (SMS, webhook deliveries) or an idempotent export in the transaction that
records the runs, so a run done twice after a crash produces nothing twice.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fieldpipe.pipelines.failures import describe
from fieldpipe.problems import FieldError
from fieldpipe.rules import store as rules_store
from fieldpipe.rules.loader import RulesFileError
from fieldpipe.sms.receipts import enqueue_receipts, receipt_messages
from fieldpipe.tasks.kinds import RESPONSE_EVENTS, Batch, RunFailed, TaskKind
from fieldpipe.webhooks import delivery
from fieldpipe.webhooks.secret_box import seal
from fieldpipe.webhooks.signing import new_secret
from fieldpipe.webhooks.targets import TargetRefused, check_target

FLAG_EVENTS = ("flag.opened", "flag.resolved")


class Archive(TaskKind):
    """The form's daily Parquet partitions, written by `archive_responses` for every form at once (never per
    response: the kind wants no response events and has no runs). A form without an archive task is archived
    whole; a disabled one is not archived; `exclude` names questions left out of the files."""

    description = "The form's responses archived daily as masked Parquet files in object storage"
    mode = "async"
    one_per_form = True
    config_schema = {
        "type": "object",
        "properties": {"exclude": {"type": "array", "uniqueItems": True,
                                   "items": {"type": "string", "minLength": 1, "maxLength": 200}}},
        "additionalProperties": False,
    }

    def events(self, config: dict) -> tuple[str, ...]:
        return ()

    def check(self, config: dict, form: dict) -> list[FieldError]:
        keys = {q["key"] for q in form["questions"]}
        return [FieldError(f"config.exclude[{i}]", "unknown_question", f"form {form['slug']!r} has no question {key!r}")
                for i, key in enumerate(config.get("exclude", [])) if key not in keys]


class Rules(TaskKind):
    """The task's configuration is the rules document in force (docs/rules.md); configuring it saves a new
    rules version, exactly as `PUT .../rules` does (which writes this task in turn). Its output is the submit
    answer's `warnings` (for every form of submission, so it has no `run_sync` of the task list's own); its
    flags come from `validate_responses`, which leaves a form alone while its rules task is disabled."""

    description = "The form's business rules: warnings in the submit answer, flags from validate_responses"
    mode = "sync"
    one_per_form = True  # one rules document in force per form
    config_schema = {
        "type": "object",
        "properties": {section: {"type": "array", "items": {"type": "object"}}
                       for section in ("rules", "expectations")},
        "additionalProperties": False,
    }

    def check(self, config: dict, form: dict) -> list[FieldError]:
        try:
            rules_store.check(config, form)
        except RulesFileError as err:
            return list(rules_store.field_errors(err, "config", name_questions=True))
        return []

    def created(self, conn: psycopg.Connection, task: dict) -> dict:
        self.updated(conn, task)
        return {}

    def updated(self, conn: psycopg.Connection, task: dict) -> None:
        rules_store.save(conn, task["form"], task["config"], f"form task {task['id']}")

    def removed(self, conn: psycopg.Connection, task: dict) -> None:
        rules_store.remove(conn, task["form_id"])


class SmsReceipt(TaskKind):
    description = "An SMS receipt to the respondent's phone answer, quoting answers as {key}"
    mode = "async"
    one_per_form = True  # one receipt per response: its dedupe key is the response's
    config_schema = {
        "type": "object",
        "properties": {"phone_question": {"type": "string", "minLength": 1},
                       "template": {"type": "string", "minLength": 1, "maxLength": 1600}},
        "required": ["phone_question", "template"],
        "additionalProperties": False,
    }

    def events(self, config: dict) -> tuple[str, ...]:
        return ("response.created",)  # an edit creates no response, so no second receipt

    def check(self, config: dict, form: dict) -> list[FieldError]:
        # XLSForm has no phone type: an XForm form's receipt may go to a text question's number.
        phone_types = ("phone", "text") if form["xform"] else ("phone",)
        question = next((q for q in form["questions"] if q["key"] == config["phone_question"]), None)
        if question is None or question["type"] not in phone_types:
            return [FieldError("config.phone_question", "unknown_question",
                               f"must name a {' or '.join(phone_types)} question of form {form['slug']!r}")]
        return []

    def run_async(self, batch: Batch) -> dict[int, Any]:
        answer: dict[int, Any] = {}
        for items in batch.by_task().values():
            first = items[0]
            messages = receipt_messages(first["organization_id"], first["config"], first["questions"],
                                        ((i["response_id"], i["submission_id"], i["answers"]) for i in items))
            enqueue_receipts(batch.conn, messages)
            for item in items:
                message = messages[item["response_id"]]
                answer[item["run_id"]] = {"sms": message.dedupe_key} if message else \
                    {"skipped": "no phone number in the answer"}
        return answer


class SheetExport(TaskKind):
    description = "The form's responses in a Google Sheet (a local workbook under `make up`), one row each"
    mode = "async"
    one_per_form = True
    config_schema = {
        "type": "object",
        "properties": {"spreadsheet_id": {"type": "string", "minLength": 1},
                       "worksheet": {"type": "string", "minLength": 1, "maxLength": 90},
                       "cell_limit_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
        "required": ["spreadsheet_id"],
        "additionalProperties": False,
    }

    def run_async(self, batch: Batch) -> dict[int, Any]:
        from fieldpipe.sheets.jobs import export_form_sheet  # the exporter is heavy; only the pipeline needs it

        answer: dict[int, Any] = {}
        for items in batch.by_task().values():
            outcome: Any = {"sheet": items[0]["config"]["spreadsheet_id"],
                            "worksheet": items[0]["config"].get("worksheet", "Responses")}
            try:
                # An earlier batch's export wrote every row that was pending then: no need to open the sheet again.
                if not _all_in_sheet(batch.conn, items):
                    with batch.conn.transaction():
                        report = export_form_sheet(batch.conn, items[0]["form_id"], batch.context.get("sheets"))
                    if report.get("skipped"):
                        outcome = RunFailed("the form no longer exports to a sheet", retry=False)
            except Exception as err:  # one form's sheet fails alone; its runs are retried
                outcome = RunFailed(describe(err))
            answer.update({item["run_id"]: outcome for item in items})
        return answer


def _all_in_sheet(conn: psycopg.Connection, items: list[dict]) -> bool:
    """Whether the sheet's row map has every item's revision (or a later one) already."""
    return conn.execute(
        """SELECT count(*) AS n
             FROM unnest(%s::uuid[], %s::int[]) AS x(submission_id, revision)
             JOIN sheet_exports e ON e.form_id = %s
             JOIN sheet_rows m ON m.export_id = e.id AND m.submission_id = x.submission_id
                              AND m.revision >= x.revision""",
        ([i["submission_id"] for i in items], [i["revision"] for i in items], items[0]["form_id"]),
    ).fetchone()["n"] >= len(items)


class Webhook(TaskKind):
    description = "Signed POSTs of the form's response and flag events to a URL"
    mode = "async"
    config_schema = {
        "type": "object",
        "properties": {"url": {"type": "string", "minLength": 1, "maxLength": 2048},
                       "events": {"type": "array", "minItems": 1, "uniqueItems": True,
                                  "items": {"enum": [*RESPONSE_EVENTS, *FLAG_EVENTS]}}},
        "required": ["url", "events"],
        "additionalProperties": False,
    }

    def events(self, config: dict) -> tuple[str, ...]:
        return tuple(config["events"])

    def check(self, config: dict, form: dict) -> list[FieldError]:
        seal("")  # first: a server that cannot keep secrets says so (503) before judging the URL
        try:
            check_target(config["url"])
        except TargetRefused as refused:
            return [FieldError("config.url", refused.code, refused.message)]
        return []

    def created(self, conn: psycopg.Connection, task: dict) -> dict:
        """The task's endpoint, with a signing secret shown only in the creation answer."""
        secret = new_secret()
        conn.execute("INSERT INTO webhooks (organization_id, url, events, secret_sealed, task_id) "
                     "VALUES (%s, %s, %s, %s, %s)",
                     (task["organization_id"], task["config"]["url"], task["config"]["events"], seal(secret),
                      task["id"]))
        return {"secret": secret}

    def updated(self, conn: psycopg.Connection, task: dict) -> None:
        conn.execute("UPDATE webhooks SET url = %s, events = %s WHERE task_id = %s",
                     (task["config"]["url"], task["config"]["events"], task["id"]))

    def run_async(self, batch: Batch) -> dict[int, Any]:
        events = [{"task_id": i["task_id"], "event": i["event"], "data": response_event_data(i),
                   "event_key": f"{i['event']}:{i['submission_id']}:{i['revision']}"} for i in batch.items]
        delivery_ids = delivery.enqueue_for_tasks(batch.conn, events)
        return {i["run_id"]: {"delivery_id": delivery_ids[e["event_key"]]} if e["event_key"] in delivery_ids
                else RunFailed("the task's webhook is gone", retry=False)
                for i, e in zip(batch.items, events)}


def response_event_data(item: dict) -> dict:
    """What a `response.created` / `response.updated` event carries: the revision as the API shows it."""
    return {"form": item["form"], "submission_id": item["submission_id"], "revision": item["revision"],
            "form_version": item["form_version"], "collector": item["collector"],
            "submitted_at": item["submitted_at"], "received_at": item["received_at"], "answers": item["answers"]}
