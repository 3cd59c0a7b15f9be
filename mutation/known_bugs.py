"""The realistic one-line bugs of issue 12, each reintroduced by hand in a throwaway copy of the repository:
its guard tests must fail every time, or the bug is reported as surviving.

    python -m mutation.known_bugs [--repeat N] [name ...]

Runs `pytest -x` on each bug's guard tests only, in a copy under a temporary folder (the work tree is never
touched), so it is safe to run while working. `make mutation PART=known-bugs` runs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPIED = ("api", "fieldpipe", "include", "tests", "dags", "plugins", "bench", "alembic.ini", "pyproject.toml")


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


ACCESS = "tests/test_access_matrix.py"
BUGS = [
    Bug("collector-deletes-webhooks", "api/routes/webhooks.py",
        '@endpoint(admin=True)\ndef delete_webhook(', '@endpoint(admin=False)\ndef delete_webhook(', (ACCESS,)),
    Bug("collector-creates-schools", "api/routes/schools.py",
        '@endpoint(admin=True)\ndef create_school(', '@endpoint()\ndef create_school(', (ACCESS,)),
    Bug("resend-another-orgs-sms", "api/routes/messages.py",
        "outbox.retry_message(conn, caller.organization_id, message_id,", "outbox.retry_message(conn, None, message_id,", (ACCESS,)),
    Bug("le-compiled-as-lt-in-sql", "fieldpipe/rules/compiler.py",
        'op = sql.SQL("<>" if node.op == "!=" else node.op)',
        'op = sql.SQL("<>" if node.op == "!=" else "<" if node.op == "<=" else node.op)',
        ("tests/test_rules_boundaries.py",)),
    # One-sided changes must also break the agreement test between the executors, on its own.
    Bug("le-compiled-as-lt-in-sql-vs-agreement", "fieldpipe/rules/compiler.py",
        'op = sql.SQL("<>" if node.op == "!=" else node.op)',
        'op = sql.SQL("<>" if node.op == "!=" else "<" if node.op == "<=" else node.op)',
        ("tests/test_rules_agreement.py",)),
    Bug("ge-evaluated-as-gt-in-python-vs-agreement", "fieldpipe/rules/inprocess.py",
        '">=": left >= right', '">=": left > right', ("tests/test_rules_agreement.py",)),
    Bug("le-evaluated-as-lt-in-python", "fieldpipe/rules/inprocess.py",
        '"<=": left <= right', '"<=": left < right', ("tests/test_rules_boundaries.py",)),
    Bug("batch-twin-keeps-the-first-silently", "fieldpipe/responses.py",
        "same = first.hash == sub.hash", "same = True", ("tests/test_ingestion_edges.py",)),
    Bug("string-number-accepted-as-integer", "fieldpipe/answers.py",
        'def _integer(value: Any) -> int:\n',
        'def _integer(value: Any) -> int:\n'
        '    if isinstance(value, str) and value.isdigit():\n        return int(value)\n',
        ("tests/test_ingestion_edges.py",)),
    Bug("empty-string-satisfies-required", "fieldpipe/answers.py",
        'return value is None or value == "" or value == []', "return value is None or value == []",
        ("tests/test_ingestion_edges.py",)),
    Bug("phone-validated-not-normalised", "fieldpipe/answers.py",
        "return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)", "return value",
        ("tests/test_ingestion_edges.py",)),
    Bug("signature-over-t-colon-body", "fieldpipe/webhooks/signing.py",
        'f"{timestamp}.".encode()', 'f"{timestamp}:".encode()', ("tests/test_known_answers.py",)),
    Bug("backoff-does-not-grow", "fieldpipe/retry.py",  # one schedule for SMS, webhooks and Sheets
        "self.base * 2 ** min(max(retry, 1) - 1, 60)", "self.base", ("tests/test_time_windows.py", "tests/test_retry.py")),
    Bug("exam-pass-mark-compared-with-gt", "include/sql/assessments/effective_counts.sql",
        "(x.marks >= i.pass_marks)::int", "(x.marks > i.pass_marks)::int", ("tests/test_pass_marks.py",)),
    Bug("student-pass-mark-compared-with-gt", "include/sql/assessments/effective_counts.sql",
        "THEN m.marks >= i.pass_marks", "THEN m.marks > i.pass_marks", ("tests/test_pass_marks.py",)),
    Bug("min-grade-compared-with-lt", "fieldpipe/assessments/definitions.py",
        "rank <= %s", "rank < %s", ("tests/test_pass_marks.py",)),
    Bug("if-none-match-as-one-exact-string", "api/routes/assessments.py",
        'tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]', "tags = [if_none_match]",
        ("tests/test_known_answers.py",)),
    Bug("flag-closing-scans-received-at", "fieldpipe/rules/ledger.py",
        "AND r.updated_at > %(since)s", "AND r.received_at > %(since)s", ("tests/test_time_windows.py",)),
    Bug("no-revisit-window", "fieldpipe/rules/ledger.py",
        "REVISIT_WINDOW = dt.timedelta(minutes=2)", "REVISIT_WINDOW = dt.timedelta(0)", ("tests/test_time_windows.py",)),
]


def run_bug(bug: Bug, work: Path) -> tuple[bool, float, str]:
    """(caught, seconds, last lines of pytest's output) with the bug in `work`, restored afterwards."""
    target = work / bug.path
    original = target.read_text()
    if original.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: the text to change is not found exactly once in {bug.path}; update the bug")
    target.write_text(original.replace(bug.old, bug.new))
    started = time.monotonic()
    try:
        env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *bug.tests],
                              cwd=work, env=env, capture_output=True, text=True)
    finally:
        target.write_text(original)
    tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
    # Exit 1 is "tests failed"; anything else (collection errors, no tests) does not count as a catch.
    return proc.returncode == 1, time.monotonic() - started, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="bugs to try (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="try each bug this many times (flaky catches show)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {b.name for b in BUGS}
    if unknown:
        parser.error(f"unknown bug(s): {', '.join(sorted(unknown))}")
    chosen = [b for b in BUGS if not args.names or b.name in args.names]
    survivors = []
    with tempfile.TemporaryDirectory(prefix="fieldpipe-known-bugs-") as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
            else:
                shutil.copy2(source, work / name)
        for bug in chosen:
            catches = 0
            for _ in range(args.repeat):
                caught, seconds, tail = run_bug(bug, work)
                catches += caught
                print(f"{'caught  ' if caught else 'SURVIVED'} {bug.name} ({seconds:.0f} s)", flush=True)
                if not caught:
                    print("    " + tail.replace("\n", "\n    "), flush=True)
            if catches < args.repeat:
                survivors.append(f"{bug.name} ({catches}/{args.repeat} caught)")
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} known bugs caught every time"
          + (f"; not: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
