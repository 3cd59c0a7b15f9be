"""Mutation testing of the core modules with mutmut, one part at a time (`make mutation PART=rules`).

Each part names the modules it mutates and the test files that guard them. A part runs in its own working
copy under var/mutation/<part>/ (mutmut keeps its results there, so a rerun only tries what changed), with
one PostgreSQL server started for the whole run: mutmut forks a fresh pytest session per mutant, and each
session would otherwise start its own server. Results go to mutation/results/<part>.json: the score and
every surviving mutant with its diff, which docs/testing.md explains one by one.

    python -m mutation.run PART [--max-children N] [mutmut mutant name globs ...]
    python -m mutation.run --list
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "mutation" / "results"
COPIED = ("api", "fieldpipe", "include", "tests", "dags", "plugins", "bench", "alembic.ini")

# part: (modules to mutate, test files that guard them)
PARTS: dict[str, tuple[list[str], list[str]]] = {
    "answers": (["fieldpipe/answers.py", "fieldpipe/forms.py"],
                ["tests/test_answer_types.py", "tests/test_forms_edges.py", "tests/test_ingestion_edges.py",
                 "tests/test_forms_api.py", "tests/test_responses_api.py"]),
    "responses": (["fieldpipe/responses.py"],
                  ["tests/test_responses_api.py", "tests/test_ingestion_edges.py", "tests/test_listing.py"]),
    "rules": (["fieldpipe/rules/*.py"],
              ["tests/test_rules_boundaries.py", "tests/test_rules_agreement.py", "tests/test_rules_validation.py",
               "tests/test_rules_cli.py"]),
    "flags": (["fieldpipe/flags.py", "fieldpipe/rules/ledger.py"],
              ["tests/test_flags_api.py", "tests/test_rules_validation.py", "tests/test_time_windows.py"]),
    "sms": (["fieldpipe/sms/*.py"], ["tests/test_sms.py", "tests/test_time_windows.py"]),
    "retry": (["fieldpipe/retry.py"], ["tests/test_retry.py", "tests/test_time_windows.py"]),
    "ratelimit": (["fieldpipe/ratelimit.py"], ["tests/test_ratelimit.py", "tests/test_webhooks_delivery.py"]),
    "webhooks": (["fieldpipe/webhooks/*.py"],
                 ["tests/test_webhooks_api.py", "tests/test_webhooks_delivery.py", "tests/test_webhooks_targets.py",
                  "tests/test_known_answers.py", "tests/test_time_windows.py"]),
    "sheets": (["fieldpipe/sheets/*.py"],
               ["tests/test_sheets_export.py", "tests/test_sheets_layout.py", "tests/test_sheets_repairs.py",
                "tests/test_sheets_targets.py"]),
    "assessments": (["fieldpipe/assessments/*.py"],
                    ["tests/test_assessments_api.py", "tests/test_assessments_aggregation.py",
                     "tests/test_assessments_export.py", "tests/test_pass_marks.py"]),
    "api": (["api/context.py"], ["tests/test_api_context.py", "tests/test_access_matrix.py", "tests/test_api_errors.py"]),
}


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(part: str, work: Path) -> None:
    """Refresh the working copy from the repository and write the part's mutmut configuration."""
    modules, tests = PARTS[part]
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:  # afresh, so a module moved away in the repository is not mutated here
        source, target = REPO / name, work / name
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "results", "*.pyc"))
        else:
            shutil.copy2(source, target)
    config = (REPO / "pyproject.toml").read_text()
    config += f"""
[tool.mutmut]
source_paths = ["fieldpipe", "api"]
only_mutate = {_toml_list(modules)}
also_copy = ["include", "dags", "plugins", "bench", "alembic.ini"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = {_toml_list(tests)}
"""
    (work / "pyproject.toml").write_text(config)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def summarize(part: str, work: Path, mutmut: str) -> dict:
    """The score and each survivor with its diff, from mutmut's own results."""
    listing = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                             check=True).stdout
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    survivors = {}
    for name, status in sorted(statuses.items()):
        if status in ("survived", "no tests"):
            diff = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
            survivors[name] = {"status": status, "diff": diff.strip()}
    killed = counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("segfault", 0)
    judged = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
    return {"part": part, "modules": PARTS[part][0], "tests": PARTS[part][1], "counts": counts,
            "mutants": len(statuses), "tried": judged, "complete": judged == len(statuses),
            "score": round(killed / judged, 4) if judged else None, "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=[*sorted(PARTS), "all"], help="a part, or all of them in turn")
    parser.add_argument("names", nargs="*", help="mutmut mutant name globs, e.g. 'fieldpipe.answers*'")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="list the parts")
    parser.add_argument("--summarize-only", action="store_true",
                        help="write the results of the part's last (perhaps stopped) run without running anything")
    args = parser.parse_args(argv)
    if args.list or not args.part:
        for name, (modules, tests) in PARTS.items():
            print(f"{name:12} {' '.join(modules)}  <-  {' '.join(tests)}")
        return 0

    if args.part == "all":
        return max(main([part, "--max-children", str(args.max_children)]) for part in PARTS)
    from fieldpipe.dev.embedded_db import EmbeddedPostgres, free_port

    work = REPO / "var" / "mutation" / args.part
    mutmut = str(Path(sys.executable).parent / "mutmut")
    if args.summarize_only:
        return write_results(args.part, work, mutmut, minutes=None)
    prepare(args.part, work)
    data_dir = Path(tempfile.mkdtemp(prefix="fieldpipe-mutation-pg-"))
    server = EmbeddedPostgres(data_dir, free_port(), fast_unsafe=True).start()
    started = time.monotonic()
    # A stopped run (Ctrl-C, or SIGTERM from a job runner) stops mutmut and its workers, then the server.
    signal.signal(signal.SIGTERM, _interrupt)
    env = {**os.environ, "TEST_DATABASE_URL": server.url}
    proc = subprocess.Popen(["nice", "-n", "10", mutmut, "run", "--max-children", str(args.max_children), *args.names],
                            cwd=work, env=env, start_new_session=True)
    try:
        proc.wait()
    except KeyboardInterrupt:  # the mutants tried so far are still worth a score, marked as partial
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return write_results(args.part, work, mutmut, minutes=round((time.monotonic() - started) / 60, 1))


def write_results(part: str, work: Path, mutmut: str, minutes: float | None) -> int:
    result = summarize(part, work, mutmut)
    result["minutes"] = minutes
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{part}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{part}: score {result['score']} over {result['tried']} of {result['mutants']} mutants, {result['counts']}; "
          f"survivors in mutation/results/{part}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
