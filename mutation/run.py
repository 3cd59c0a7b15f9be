"""Mutation testing of the core modules with mutmut, one part at a time (`make mutation PART=rules`).

Each part names the modules it mutates and the test files that guard them. A part runs in its own working
copy under var/mutation/<part>/ (mutmut keeps its results there, so a rerun only tries what changed), with
one PostgreSQL server started for the whole run: mutmut forks a fresh pytest session per mutant, and each
session would otherwise start its own server. Results go to mutation/results/<part>.json: the score and
every surviving mutant with its diff, which docs/testing.md explains one by one.

    python -m mutation.run PART [--max-children N] [--sample N [--seed S] [--fresh]] [mutmut mutant name globs ...]
    python -m mutation.run --list

`--sample N` tries a uniform random sample of N of the part's mutants (the same ones every time: a larger N
extends the sample, a rerun resumes it), for parts too big for the machine time there is. The score is then
an estimate, with its 95% interval in the results. Without it mutmut tries every mutant, cheapest tests first,
so a run stopped halfway is a biased sample. `--seed S` draws another sample (the default order is seeded by
the part's name): a sample nobody looked at while writing tests. `--fresh` tries every mutant of the sample
again, whatever its last verdict: mutmut keeps a verdict until the mutated function's code changes, even when
the tests changed since.
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

# part: (modules to mutate, test files that guard them). A part's guard tests run three times before its first
# mutant (stats, clean run, forced failure); then each mutant runs only the guard tests that call the function
# it changed. So a part lists every test file that checks its behaviour, and no slow DAG runs: the DAG tests
# call the same functions the listed tests call directly.
PARTS: dict[str, tuple[list[str], list[str]]] = {
    "answers": (["fieldpipe/answers.py", "fieldpipe/forms.py"],
                ["tests/test_answer_types.py", "tests/test_forms_edges.py", "tests/test_ingestion_edges.py",
                 "tests/test_forms_api.py", "tests/test_responses_api.py", "tests/test_openrosa.py"]),
    "responses": (["fieldpipe/responses.py"],
                  ["tests/test_responses_api.py", "tests/test_ingestion_edges.py", "tests/test_listing.py"]),
    # the rules language: parser and type checker, both executors, the regex subset
    "rules": (["fieldpipe/rules/expression.py", "fieldpipe/rules/compiler.py", "fieldpipe/rules/inprocess.py",
               "fieldpipe/rules/regex.py"],
              ["tests/test_rules_boundaries.py", "tests/test_rules_agreement.py", "tests/test_rules_validation.py",
               "tests/test_rules_api.py"]),
    # rules documents and their runs: loading, storing, validation runs, dry runs, statistics, expectations
    "rules-runs": (["fieldpipe/rules/__init__.py", "fieldpipe/rules/loader.py", "fieldpipe/rules/store.py",
                    "fieldpipe/rules/validate.py", "fieldpipe/rules/dry_run.py", "fieldpipe/rules/statistics.py",
                    "fieldpipe/rules/expectations.py"],
                   ["tests/test_rules_validation.py", "tests/test_rules_api.py", "tests/test_rules_cli.py",
                    "tests/test_rules_statistics.py", "tests/test_time_windows.py", "tests/test_rules_documents.py"]),
    "flags": (["fieldpipe/flags.py", "fieldpipe/rules/ledger.py"],
              ["tests/test_flags_api.py", "tests/test_rules_validation.py", "tests/test_time_windows.py"]),
    "sms": (["fieldpipe/sms/*.py"], ["tests/test_sms.py", "tests/test_time_windows.py", "tests/test_flag_notices.py"]),
    "retry": (["fieldpipe/retry.py"], ["tests/test_retry.py", "tests/test_time_windows.py"]),
    "ratelimit": (["fieldpipe/ratelimit.py"], ["tests/test_ratelimit.py", "tests/test_webhooks_delivery.py"]),
    "webhooks": (["fieldpipe/webhooks/*.py"],
                 ["tests/test_webhooks_api.py", "tests/test_webhooks_delivery.py", "tests/test_webhooks_targets.py",
                  "tests/test_webhooks_transport.py", "tests/test_known_answers.py", "tests/test_time_windows.py"]),
    # the export itself: which columns, how answers become cells, repeats, the incremental run
    "sheets": (["fieldpipe/sheets/export.py", "fieldpipe/sheets/layout.py", "fieldpipe/sheets/repeats.py",
                "fieldpipe/sheets/jobs.py"],
               ["tests/test_sheets_export.py", "tests/test_sheets_layout.py", "tests/test_sheets_repairs.py",
                "tests/test_openrosa_export.py"]),
    # where it writes: Google (against the fake Sheets server) or a local workbook, within quota
    "sheets-targets": (["fieldpipe/sheets/targets.py", "fieldpipe/sheets/quota.py"],
                       ["tests/test_sheets_targets.py", "tests/test_sheets_export.py", "tests/test_sheets_repairs.py",
                        "tests/test_assessments_export.py", "tests/test_reporting_workbooks.py"]),
    # definitions and what is submitted against them (marks, grades, exam answers, pass marks)
    "assessments": (["fieldpipe/assessments/definitions.py", "fieldpipe/assessments/submissions.py"],
                    ["tests/test_assessments_api.py", "tests/test_pass_marks.py",
                     "tests/test_assessments_aggregation.py", "tests/test_exams.py"]),
    # rosters and the daily summaries with their Summary tab, and the Results tab of exams (tested with exams)
    "assessments-summaries": (["fieldpipe/assessments/roster.py", "fieldpipe/assessments/aggregate.py",
                               "fieldpipe/assessments/export.py"],
                              ["tests/test_assessments_api.py", "tests/test_assessments_aggregation.py",
                               "tests/test_assessments_export.py", "tests/test_pass_marks.py",
                               "tests/test_assessment_results.py", "tests/test_exams.py", "tests/test_enrollment.py",
                               "tests/test_rosters.py"]),
    # exams sat by students: sign-in, sittings and their answers, results as of an instant, read-back listings
    "assessments-exams": (["fieldpipe/assessments/exams.py", "fieldpipe/assessments/signin.py",
                           "fieldpipe/assessments/results.py", "fieldpipe/assessments/readback.py"],
                          ["tests/test_exams.py", "tests/test_assessment_results.py", "tests/test_assessments_api.py",
                           "tests/test_pass_marks.py"]),
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


def _migrated_template(maintenance_url: str) -> str:
    """A migrated database that each mutant's test session copies (tests/conftest.py) instead of migrating its own."""
    import psycopg

    from fieldpipe.db import migrate
    from fieldpipe.dev.airflow_runtime import with_database

    name = "fieldpipe_mutation_template"
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(with_database(maintenance_url, name))
    return name


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _statuses(work: Path, mutmut: str) -> dict[str, str]:
    listing = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                             check=True).stdout
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    return statuses


def summarize(part: str, work: Path, mutmut: str, sample: int | None = None, seed: str | None = None) -> dict:
    """The score and each survivor with its diff, from mutmut's own results (over the sample, if one was
    taken, with the 95% Wilson interval of the part's whole score)."""
    statuses = all_statuses = _statuses(work, mutmut)
    if sample:
        statuses = sampled(all_statuses, sample, seed=sample_seed(part, seed))
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    survivors = {}
    for name, status in statuses.items():
        if status in ("survived", "no tests"):
            diff = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
            survivors[name] = {"status": status, "diff": diff.strip()}
    killed = counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("segfault", 0)
    judged = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
    return {"part": part, "modules": PARTS[part][0], "tests": PARTS[part][1], "counts": counts,
            "mutants": len(all_statuses), "sample": len(statuses) if sample else None, "seed": seed, "tried": judged,
            "complete": judged == len(all_statuses), "score": round(killed / judged, 4) if judged else None,
            "interval95": _wilson(killed, judged) if sample and judged else None, "survivors": survivors,
            "statuses": statuses if sample else None}


# The parts over the modules issue 12 names as the core (answers, responses, forms, rules, flags, sms, webhooks,
# sheets, assessments, api/context.py); retry and ratelimit are measured too, but not counted in the core score.
CORE = [part for part in PARTS if part not in ("retry", "ratelimit")]


def report() -> int:
    """Each part's last results and the core modules' score: each part's score weighted by its number of
    mutants (a stratified estimate when parts are sampled), with a normal-approximation 95% interval."""
    rows, total, estimate, variance = [], 0, 0.0, 0.0
    for part in PARTS:
        path = RESULTS / f"{part}.json"
        if not path.exists():
            rows.append(f"{part:22} not measured")
            continue
        result = json.loads(path.read_text())
        counts, score = result["counts"], result["score"]
        mutants = result.get("mutants") or sum(counts.values())
        tried = sum(n for status, n in counts.items() if status not in ("not checked", "skipped"))
        survived = counts.get("survived", 0) + counts.get("no tests", 0)
        interval = result.get("interval95") or [score, score]
        rows.append(f"{part:22} {tried:4} of {mutants:5}  {tried - survived:4} killed  {survived:3} survived"
                    f"  {score:7.1%}  ({interval[0]:.1%} to {interval[1]:.1%})" + ("" if part in CORE else "  (not core)"))
        if part in CORE and tried:
            total += mutants
            estimate += mutants * score
            variance += mutants ** 2 * score * (1 - score) / tried * (1 - tried / mutants)
    print("\n".join(rows))
    if total:
        half = 1.96 * variance ** 0.5 / total
        print(f"core modules: {estimate / total:.1%} (95%: {estimate / total - half:.1%} to "
              f"{min(estimate / total + half, 1):.1%}) over {total} mutants")
    return 0


def _wilson(killed: int, tried: int, z: float = 1.96) -> list[float]:
    p = killed / tried
    centre = (p + z * z / (2 * tried)) / (1 + z * z / tried)
    half = z * (p * (1 - p) / tried + z * z / (4 * tried * tried)) ** 0.5 / (1 + z * z / tried)
    return [round(centre - half, 4), round(centre + half, 4)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=[*sorted(PARTS), "all"], help="a part, or all of them in turn")
    parser.add_argument("names", nargs="*", help="mutmut mutant name globs, e.g. 'fieldpipe.answers*'")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--sample", type=int, help="try only a fixed random sample of this many mutants")
    parser.add_argument("--seed", help="with --sample: draw the sample in another fixed order (default: the part's name)")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="with --sample: try the sample's survivors again (after new tests), not only the untried")
    parser.add_argument("--fresh", action="store_true",
                        help="with --sample: try every mutant of the sample again, whatever its last verdict")
    parser.add_argument("--list", action="store_true", help="list the parts")
    parser.add_argument("--report", action="store_true", help="print every part's last score and the core's")
    parser.add_argument("--summarize-only", action="store_true",
                        help="write the results of the part's last (perhaps stopped) run without running anything")
    args = parser.parse_args(argv)
    if args.report:
        return report()
    if (args.seed or args.fresh or args.rerun_survivors) and not args.sample:
        parser.error("--seed, --fresh and --rerun-survivors go with --sample")
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
        return write_results(args.part, work, mutmut, minutes=None, sample=args.sample, seed=args.seed)
    prepare(args.part, work)
    data_dir = Path(tempfile.mkdtemp(prefix="fieldpipe-mutation-pg-"))
    server = EmbeddedPostgres(data_dir, free_port(), fast_unsafe=True).start()
    started = time.monotonic()
    # A stopped run (Ctrl-C, or SIGTERM from a job runner) stops mutmut and its workers, then the server.
    signal.signal(signal.SIGTERM, _interrupt)
    env = {**os.environ, "TEST_DATABASE_URL": server.url, "TEST_TEMPLATE_DATABASE": _migrated_template(server.url)}
    names = args.names
    try:
        if args.sample:
            # mutmut generates the mutants (and collects which tests call what) before it finds no such name
            _mutmut_run(mutmut, work, env, args.max_children, ["no-such-mutant"])
            sample = sampled(_statuses(work, mutmut), args.sample, seed=sample_seed(args.part, args.seed))
            again = ("not checked", "survived", "no tests") if args.rerun_survivors else ("not checked",)
            names = [name for name, status in sample.items() if args.fresh or status in again]
            print(f"{args.part}: sample of {len(sample)} mutants, {len(names)} to try")
        if names or not args.sample:
            _mutmut_run(mutmut, work, env, args.max_children, names)
    except KeyboardInterrupt:  # the mutants tried so far are still worth a score, marked as partial
        pass
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return write_results(args.part, work, mutmut, minutes=round((time.monotonic() - started) / 60, 1),
                         sample=args.sample, seed=args.seed)


def _mutmut_run(mutmut: str, work: Path, env: dict, max_children: int, names: list[str]) -> None:
    proc = subprocess.Popen(["nice", "-n", "10", mutmut, "run", "--max-children", str(max_children), *names],
                            cwd=work, env=env, start_new_session=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise


def sample_seed(part: str, seed: str | None) -> str:
    """The part's name alone seeded the samples before `--seed` existed; they stay reproducible."""
    return f"{part}:{seed}" if seed else part


def sampled(statuses: dict[str, str], size: int, seed: str) -> dict[str, str]:
    """The first `size` of the mutants in an order fixed by `seed`: the same sample every run, and a larger
    size extends it."""
    import random

    names = sorted(statuses)
    random.Random(seed).shuffle(names)
    return {name: statuses[name] for name in names[:size]}


def write_results(part: str, work: Path, mutmut: str, minutes: float | None, sample: int | None = None,
                  seed: str | None = None) -> int:
    result = summarize(part, work, mutmut, sample, seed)
    result["minutes"] = minutes
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{part}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{part}: score {result['score']} over {result['tried']} of {result['mutants']} mutants, {result['counts']}; "
          f"survivors in mutation/results/{part}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
