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


def check_files(paths: list[Path]) -> tuple[bool, list[str]]:
    """(all good, report lines). Every file with every form of its slug; a file no form matches is an error."""
    paths = paths or sorted(rules_dir().glob("*.yaml"))
    slugs = [p.stem for p in paths]
    database = _database_forms(slugs)
    forms = database if database is not None else {}
    demo = _demo_forms()
    ok, lines = True, []
    for path in paths:
        if not path.exists():
            ok = False
            lines.append(f"{path}: no such file")
            continue
        targets = forms.get(path.stem) or demo.get(path.stem) or []
        if not targets:
            ok = False
            lines.append(f"{path}: no form with slug {path.stem!r} to check the answer keys against "
                         f"({'not in the database' if database is not None else 'no database reachable'})")
            continue
        for name, questions in targets:
            try:
                ruleset = load_file(path, questions)
            except RulesFileError as err:
                ok = False
                lines.append(f"{err.report()}\n  (checked against {name})")
                continue
            lines.append(f"{path}: ok, {len(ruleset.rules)} rule(s) and {len(ruleset.expectations)} "
                         f"expectation(s) against {name}")
    return ok, lines
