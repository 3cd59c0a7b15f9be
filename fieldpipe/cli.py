"""The `fieldpipe` command: database, keys, demo data and `up` (what `make up` runs).

Commands that print records take `--json` (one JSON document on standard output, for scripts); commands
that walk many rows show a progress bar on standard error when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from fieldpipe.db import connect, migrate


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("fieldpipe")
    except PackageNotFoundError:
        return "unknown (not installed)"


def print_json(document: object) -> None:
    print(json.dumps(document, default=str, ensure_ascii=False, indent=2))


@contextmanager
def progress(total: int | None, unit: str, description: str) -> Iterator[Callable[[int], object]]:
    """A progress bar on standard error (only on a terminal); yields its `update(n)`. Log lines meanwhile are
    written above the bar rather than through it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit=unit, desc=description, file=sys.stderr, disable=None, leave=False) as bar, \
            logging_redirect_tqdm():
        yield bar.update


def _operator_change(change: Callable[[Any], Any]) -> Any:
    """Run `change(conn)` in one transaction on the configured database. A refusal (a Problem such as not found
    or not retryable) prints its detail and returns None, having changed nothing."""
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.problems import Problem

    with connect(database_url()) as conn:
        try:
            result = change(conn)
        except Problem as problem:
            print(problem.detail, file=sys.stderr)
            return None
        conn.commit()
    return result


def _cmd_db_start(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import database_url

    print(database_url(start=True))
    return 0


def _cmd_db_stop(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import embedded_server

    embedded_server().stop()
    return 0


def _cmd_db_migrate(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import database_url

    migrate(database_url())
    print("schema is up to date")
    return 0


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.orgs import create_key

    with connect(database_url()) as conn:
        try:
            key = create_key(conn, args.org, args.role, args.label, create_org=args.create_org)
        except LookupError as err:
            print(f"{err}; check the slug (fieldpipe keys list shows the organizations that have keys), "
                  "or pass --create-org to create it", file=sys.stderr)
            return 1
        conn.commit()
    print(f"Created a {args.role} key for organization {args.org!r}. It is shown only once:")
    print(key)
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    from fieldpipe import paging
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.orgs import KEYS, list_keys, organization_id

    with connect(database_url()) as conn:
        org = None
        if args.org:
            org = organization_id(conn, args.org)
            if org is None:
                print(f"organization {args.org!r} does not exist", file=sys.stderr)
                return 1
        page = paging.Page(KEYS, paging.MAX_LIMIT)
        records = []
        if not args.json:
            print(f"{'id':>6}  {'organization':<20} {'role':<10} {'prefix':<11} {'created':<20} {'revoked':<20} label")
        while True:
            answer = list_keys(conn, org, page)
            for k in answer["items"]:
                records.append(k)
                if args.json:
                    continue
                revoked = k["revoked_at"].strftime("%Y-%m-%d %H:%M:%S") if k["revoked_at"] else "-"
                print(f"{k['id']:>6}  {k['organization']:<20} {k['role']:<10} {k['prefix']:<11} "
                      f"{k['created_at']:%Y-%m-%d %H:%M:%S}  {revoked:<20} {k['label'] or ''}")
            if answer["next_cursor"] is None:
                break
            page = paging.Page(KEYS, paging.MAX_LIMIT, KEYS.decode(answer["next_cursor"]))
    if args.json:
        print_json(records)
    return 0


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    from fieldpipe.orgs import KEY_CACHE_SECONDS, revoke_key

    key = _operator_change(lambda conn: revoke_key(conn, None, args.id))
    if key is None:
        return 1
    print(f"revoked key {key['id']} ({key['prefix']}..., {key['role']} of {key['organization']!r}) at "
          f"{key['revoked_at']:%Y-%m-%d %H:%M:%S %Z}; running API processes stop accepting it within "
          f"{KEY_CACHE_SECONDS} s")
    return 0


def _cmd_demo_load(args: argparse.Namespace) -> int:
    from fieldpipe.dev.demo import load_demo
    from fieldpipe.dev.local_db import database_url

    with connect(database_url()) as conn:
        load_demo(conn)
        conn.commit()
    print("demo organization 'demo' is loaded")
    return 0


def _cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.webhooks.delivery import requeue_failed

    with connect(database_url()) as conn:
        ids = requeue_failed(conn, delivery_ids=None if args.all_failed else [args.id])
        conn.commit()
    if args.json:
        print_json({"requeued": ids})
    else:
        print(f"requeued {len(ids)} failed webhook deliver{'y' if len(ids) == 1 else 'ies'}"
              + (f": {', '.join(map(str, ids))}" if ids else ""))
    return 0 if ids or args.all_failed else 1


def _cmd_reporting_refresh(args: argparse.Namespace) -> int:
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.reporting.views import refresh_all

    with connect(database_url()) as conn:
        forms = conn.execute("SELECT count(*) AS n FROM forms").fetchone()["n"]
        with progress(forms, "form", "reporting views") as advance:
            names = refresh_all(conn, progress=advance)
        conn.commit()
    print(f"rebuilt {len(names)} reporting view(s) and granted them to fieldpipe_reporting")
    return 0


def _cmd_repair_responses(args: argparse.Namespace) -> int:
    from fieldpipe import repair
    from fieldpipe.dev.local_db import database_url

    with connect(database_url()) as conn:
        try:
            with progress(repair.count(conn, args.org, args.form), "response", "scanning") as advance:
                found = repair.find(conn, args.org, args.form, progress=advance)
        except LookupError as err:
            print(err, file=sys.stderr)
            return 1
        # the field and the problem, never the value (it may be personal data)
        records = [{"submission_id": item.submission_id, "revision": item.revision, "field": item.field,
                    "problem": item.problem, "action": "cleared" if item.repaired_to is None else "repaired"}
                   for item in found]
        repaired = None
        if args.apply:
            with progress(len({item.response_id for item in found}), "response", "repairing") as advance:
                repaired = repair.apply(conn, found, progress=advance)
            conn.commit()
    if args.json:
        print_json({"values": records, "applied": args.apply, "responses_repaired": repaired})
        return 0
    for record in records:
        print(f"response {record['submission_id']} revision {record['revision']}: {record['field']} "
              f"({record['problem']}) -> {record['action']}")
    if not args.apply:
        print(f"{len(found)} value(s) outside their domain in {args.org}/{args.form}; "
              "nothing changed (run again with --apply)")
    else:
        print(f"repaired {len(found)} value(s) in {repaired} response(s) of {args.org}/{args.form}, each as a new "
              "revision; the originals are in response_repairs")
    return 0


def _cmd_airflow_init(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from fieldpipe.dev import airflow_runtime
    from fieldpipe.pipelines.names import POOLS

    if os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        airflow_runtime.ensure_own_metadata_database()
    else:
        from fieldpipe.dev.local_db import AIRFLOW_DATABASE, database_url

        app_db_url = database_url(start=True)
        metadata_url = airflow_runtime.ensure_metadata_database(app_db_url, AIRFLOW_DATABASE)
        os.environ.update(airflow_runtime.local_env(app_db_url, metadata_url))
    airflow_runtime.init_metadata()
    print("Airflow metadata database is up to date; pools: " + ", ".join(POOLS))
    print("\n".join("connection " + line for line in airflow_runtime.connection_summary()))
    password = airflow_runtime.admin_password(Path(os.environ["AIRFLOW_HOME"]))
    print(f"Airflow login: {airflow_runtime.ADMIN_USER} / {password}")
    return 0


def _cmd_airflow_check_dags(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fieldpipe.config import REPO_ROOT
    from fieldpipe.dev.dag_parse import convention_problems, parse_in_subprocess

    report = parse_in_subprocess(Path(args.folder or REPO_ROOT / "dags"))
    problems = convention_problems(report)
    print(f"{len(report['dags'])} DAGs parsed in {report['parse_seconds']:.2f} s")
    print("\n".join(problems) if problems else "every DAG follows the conventions")
    return 1 if problems else 0


def _cmd_sms_dispatch(args: argparse.Namespace) -> int:
    import logging

    from fieldpipe.dev.local_db import database_url
    from fieldpipe.sms.dispatch import dispatch_configured
    from fieldpipe.sms.outbox import status_counts

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    url = database_url()
    with connect(url) as conn:
        queued = status_counts(conn)["queued"]
    with progress(queued, "message", "sending") as advance:
        report = dispatch_configured(lambda: connect(url), args.provider, args.batch_size, args.max_seconds,
                                     progress=advance)
    if args.json:
        print_json(report.as_dict())
    else:
        print(", ".join(f"{name} {value}" for name, value in report.as_dict().items()))
    return 0


def _cmd_sms_retry(args: argparse.Namespace) -> int:
    from fieldpipe.sms.outbox import retry_message

    message = _operator_change(lambda conn: retry_message(conn, None, args.id))
    if message is None:
        return 1
    print(f"message {message['id']} to {message['recipient']} is queued again")
    return 0


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fieldpipe.dev.rules_check import check_files, report_lines

    records = check_files([Path(p) for p in args.files])
    if args.json:
        print_json(records)
    else:
        print("\n".join(report_lines(records)))
    return 0 if all(record["ok"] for record in records) else 1


def _cmd_rules_push(args: argparse.Namespace) -> int:
    """Each file is one form's new rules version (or unchanged), in its own transaction: a broken file
    stores nothing and the others still go in."""
    from pathlib import Path

    from fieldpipe.forms import get_form_row
    from fieldpipe.dev.local_db import database_url
    from fieldpipe.problems import Problem
    from fieldpipe.rules.loader import RulesFileError, read_document
    from fieldpipe.rules.store import cli_author, save

    records = []
    with connect(database_url()) as conn:
        org = conn.execute("SELECT id FROM organizations WHERE slug = %s", (args.org,)).fetchone()
        if org is None:
            print(f"no organization {args.org!r}", file=sys.stderr)
            return 1
        for path in map(Path, args.files):
            try:
                document = read_document(path)
                slug = document.get("form", path.stem) if isinstance(document, dict) else path.stem
                with conn.transaction():
                    form = get_form_row(conn, org["id"], str(slug))
                    saved, created = save(conn, form, document, cli_author(), source=str(path))
            except (RulesFileError, Problem, OSError) as err:
                problems = [e.message for e in getattr(err, "errors", [])] or [getattr(err, "detail", None) or str(err)]
                records.append({"file": str(path), "form": None, "saved": False, "version": None,
                                "rules": None, "expectations": None, "problems": problems})
                if not args.json:
                    print("\n".join(f"{path}: {p}" for p in problems), file=sys.stderr)
                continue
            records.append({"file": str(path), "form": f"{args.org}/{slug}", "saved": created,
                            "version": saved["version"], "rules": len(saved["rules"]),
                            "expectations": len(saved["expectations"]), "problems": []})
            if not args.json:
                what = f"saved as version {saved['version']}" if created else f"unchanged (version {saved['version']})"
                print(f"{args.org}/{slug}: {what}, {len(saved['rules'])} rule(s) and {len(saved['expectations'])} "
                      f"expectation(s)")
        conn.commit()
    if args.json:
        print_json(records)
    return 1 if any(record["problems"] for record in records) else 0


def _cmd_rules_pull(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fieldpipe.dev.local_db import database_url
    from fieldpipe.rules.store import as_yaml, pull_documents

    with connect(database_url()) as conn:
        pulled = pull_documents(conn, args.org, args.form)
    if not pulled:
        print(f"organization {args.org!r} has no {'form ' + repr(args.form) + ' with ' if args.form else ''}rules",
              file=sys.stderr)
        return 1
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for item in pulled:
        path = folder / f"{item['form']}.yaml"
        path.write_text(as_yaml(item))
        records.append({"file": str(path), "form": f"{args.org}/{item['form']}", "version": item["version"]})
    if args.json:
        print_json(records)
    else:
        print("\n".join(f"{r['file']}: version {r['version']} of {r['form']}" for r in records))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from fieldpipe.dev.devserver import run_up

    return run_up()


JSON_HELP = "print the records as one JSON document instead of text"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fieldpipe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fieldpipe {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the application database").add_subparsers(dest="action", required=True)
    db.add_parser("start", help="start the embedded PostgreSQL under var/ and print the app database URL").set_defaults(func=_cmd_db_start)
    db.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=_cmd_db_stop)
    db.add_parser("migrate", help="apply the Alembic migrations").set_defaults(func=_cmd_db_migrate)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key for an organization; prints it once, last")
    create.add_argument("--org", required=True, help="organization slug")
    create.add_argument("--role", required=True, choices=["admin", "collector"])
    create.add_argument("--label", help="what the key is for")
    create.add_argument("--create-org", action="store_true", help="create the organization if it does not exist")
    create.set_defaults(func=_cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (never the keys themselves): id, role, prefix, revoked")
    listing.add_argument("--org", help="only this organization's keys")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(func=_cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id (see keys list)")
    revoke.add_argument("id", type=int, help="the key's id")
    revoke.set_defaults(func=_cmd_keys_revoke)

    demo = commands.add_parser("demo", help="demo data").add_subparsers(dest="action", required=True)
    demo.add_parser("load", help="create the demo organization and forms (idempotent)").set_defaults(func=_cmd_demo_load)

    deliveries = commands.add_parser("deliveries", help="webhook deliveries").add_subparsers(dest="action", required=True)
    retry = deliveries.add_parser("retry", help="put failed deliveries back in the queue (fresh 24 h window)")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, help="one delivery's id")
    which.add_argument("--all-failed", action="store_true", help="every failed delivery")
    retry.add_argument("--json", action="store_true", help=JSON_HELP)
    retry.set_defaults(func=_cmd_deliveries_retry)

    reporting = commands.add_parser("reporting", help="the masked reporting schema").add_subparsers(
        dest="action", required=True)
    reporting.add_parser("refresh", help="rebuild every form's reporting view and grant the reporting role"
                         ).set_defaults(func=_cmd_reporting_refresh)

    airflow = commands.add_parser("airflow", help="Airflow for this project").add_subparsers(dest="action", required=True)
    airflow.add_parser("init", help="migrate Airflow's metadata database, create pools, print the login").set_defaults(
        func=_cmd_airflow_init)
    check = airflow.add_parser("check-dags", help="parse the DAGs folder and check the DAG conventions")
    check.add_argument("--folder", help="DAGs folder (default: dags/)")
    check.set_defaults(func=_cmd_airflow_check_dags)

    sms = commands.add_parser("sms", help="the SMS outbox").add_subparsers(dest="action", required=True)
    send = sms.add_parser("dispatch", help="send what is due now (what the send_sms DAG runs)")
    send.add_argument("--provider", choices=["file", "sns", "twilio"], help="default: FIELDPIPE_SMS_PROVIDER or file")
    send.add_argument("--batch-size", type=int)
    send.add_argument("--max-seconds", type=float, help="stop claiming after this long")
    send.add_argument("--json", action="store_true", help=JSON_HELP)
    send.set_defaults(func=_cmd_sms_dispatch)
    again = sms.add_parser("retry", aliases=["resend"],
                           help="queue an unknown or failed message again (see docs/sms.md)")
    again.add_argument("id", type=int, help="the message id (GET /api/v1/messages)")
    again.set_defaults(func=_cmd_sms_retry)

    rules = commands.add_parser("rules", help="business rules: check, push and pull rules files").add_subparsers(dest="action", required=True)
    check = rules.add_parser("check", help="check rules files as the validation DAG loads them (exit 1 if broken)")
    check.add_argument("files", nargs="*", help="rules files (default: every include/rules/*.yaml)")
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.set_defaults(func=_cmd_rules_check)
    push = rules.add_parser("push", help="save rules files as their forms' new rules versions (the form is the "
                                         "file's `form`, else its name)")
    push.add_argument("--org", required=True, help="organization slug")
    push.add_argument("files", nargs="+", help="rules files (YAML)")
    push.add_argument("--json", action="store_true", help=JSON_HELP)
    push.set_defaults(func=_cmd_rules_push)
    pull = rules.add_parser("pull", help="write the rules in force of an organization's forms as YAML files")
    pull.add_argument("--org", required=True, help="organization slug")
    pull.add_argument("--form", help="only this form's rules")
    pull.add_argument("--dir", default=".", help="where to write <form>.yaml (default: the current folder)")
    pull.add_argument("--json", action="store_true", help=JSON_HELP)
    pull.set_defaults(func=_cmd_rules_pull)

    fix = commands.add_parser("repair", help="repair rows stored before the API refused their values").add_subparsers(
        dest="action", required=True)
    poisoned = fix.add_parser("responses", help="list (and with --apply repair) a form's values outside their "
                                                "domain (docs/api-domains.md)")
    poisoned.add_argument("org", help="organization slug")
    poisoned.add_argument("form", help="form slug")
    poisoned.add_argument("--apply", action="store_true", help="make the repairs (default: only list them)")
    poisoned.add_argument("--json", action="store_true", help=JSON_HELP)
    poisoned.set_defaults(func=_cmd_repair_responses)

    commands.add_parser("up", help="run everything locally until Ctrl-C (what `make up` does)").set_defaults(func=_cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
