"""`fieldpipe rules check [FILE...]`: the load-time check of rules files, from the command line.

Each file `<slug>.yaml` is checked against the current questions of every form with that slug in the
database (DATABASE_URL, or the embedded server of `make up` when it is running), exactly as the DAG
loads it. Without a database, the demo forms' definitions stand in for forms of the same slug.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from fieldpipe.db import connect
from fieldpipe.forms import CURRENT_FORMS
from fieldpipe.rules.loader import RulesFileError, load_file, rules_dir


def _database_forms(slugs: list[str]) -> dict[str, list[tuple[str, list[dict]]]] | None:
    """{slug: [(organization/slug, questions)]} from the database, or None when none is reachable."""
    from fieldpipe.dev.local_db import database_url

    try:
        url = database_url(start=False)
        with connect(url, connect_timeout=3) as conn:
            rows = conn.execute(
                f"""SELECT f.slug, o.slug AS organization, v.questions FROM {CURRENT_FORMS}
                     JOIN organizations o ON o.id = f.organization_id
                    WHERE f.slug = ANY(%s) ORDER BY o.slug""",
                (slugs,),
            ).fetchall()
    except psycopg.Error:
        return None
    found: dict[str, list] = {}
    for row in rows:
        found.setdefault(row["slug"], []).append((f"{row['organization']}/{row['slug']}", row["questions"]))
    return found


def _demo_forms() -> dict[str, list[tuple[str, list[dict]]]]:
    from fieldpipe.dev.demo import DEMO_FORMS, DEMO_ORG
    from fieldpipe.forms import check_questions

    return {d["slug"]: [(f"{DEMO_ORG}/{d['slug']} (demo definition)", check_questions(d["questions"])[0])]
            for d in DEMO_FORMS}


def check_files(paths: list[Path]) -> list[dict]:
    """One record per file and form it is checked against (every form of its slug; a file no form matches
    is one record with `form` None): file, form, ok, rules, expectations (counts when ok), problems."""
    paths = paths or sorted(rules_dir().glob("*.yaml"))
    slugs = [p.stem for p in paths]
    database = _database_forms(slugs)
    forms = database if database is not None else {}
    demo = _demo_forms()
    records = []
    for path in paths:
        if not path.exists():
            records.append(_record(path, None, ["no such file"]))
            continue
        targets = forms.get(path.stem) or demo.get(path.stem) or []
        if not targets:
            records.append(_record(path, None, [
                f"no form with slug {path.stem!r} to check the answer keys against "
                f"({'not in the database' if database is not None else 'no database reachable'})"]))
            continue
        for name, questions in targets:
            try:
                ruleset = load_file(path, questions)
            except RulesFileError as err:
                records.append(_record(path, name, err.problems))
                continue
            records.append({**_record(path, name, []), "rules": len(ruleset.rules),
                            "expectations": len(ruleset.expectations)})
    return records


def _record(path: Path, form: str | None, problems: list[str]) -> dict:
    return {"file": str(path), "form": form, "ok": not problems, "rules": None, "expectations": None,
            "problems": problems}


def report_lines(records: list[dict]) -> list[str]:
    """The records as the command prints them: a line per file and form, a line per problem."""
    lines = []
    for record in records:
        if record["ok"]:
            lines.append(f"{record['file']}: ok, {record['rules']} rule(s) and {record['expectations']} "
                         f"expectation(s) against {record['form']}")
        else:
            lines += [f"{record['file']}: {problem}" for problem in record["problems"]]
            if record["form"] is not None:
                lines.append(f"  (checked against {record['form']})")
    return lines
