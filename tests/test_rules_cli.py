"""`fieldpipe rules check`, run as a form owner would run it before shipping a rules file."""

import subprocess
import sys
import textwrap


def rules_check(db_url, *files):
    return subprocess.run([sys.executable, "-m", "fieldpipe.cli", "rules", "check", *map(str, files)],
                          capture_output=True, text=True, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})


def test_shipped_rules_files_pass_the_check(db_url, make_form):
    make_form()  # household-survey in the database; water-point-audit is checked against its demo definition
    result = rules_check(db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "household-survey.yaml: ok, 4 rule(s) and 1 expectation(s) against acme/household-survey" in result.stdout
    assert "water-point-audit.yaml: ok" in result.stdout


def test_broken_file_fails_naming_file_rule_and_problem(db_url, make_form, tmp_path):
    make_form()
    path = tmp_path / "household-survey.yaml"
    path.write_text(textwrap.dedent("""
        rules:
          - id: savings-vs-name
            expression: monthly_savings <= name
            message: x
          - id: typo
            expression: monthly_savngs > 0
            message: "{monthly_savings}"
          - id: parse
            expression: "city in [\\"pune\\""
            message: x
    """))
    result = rules_check(db_url, path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{path}: rule 'savings-vs-name': expression 'monthly_savings <= name': '<=' compares number answer " \
           "'monthly_savings' with text answer 'name'" in lines
    assert any(line.startswith(f"{path}: rule 'typo': expression 'monthly_savngs > 0': unknown answer key 'monthly_savngs'")
               for line in lines)
    assert any(line.startswith(f"{path}: rule 'parse': ") and "expected ']'" in line for line in lines)


def rules_cli(db_url, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fieldpipe.cli", "rules", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "USER": "tester"})


def test_push_saves_a_version_per_file_refuses_a_broken_one_and_pull_gives_back_what_push_takes(
        db_url, conn, make_form, other_org_admin_key, tmp_path):
    make_form()
    make_form(key=other_org_admin_key)  # rival's household-survey: untouched by acme's push
    good = tmp_path / "household-survey.yaml"
    good.write_text("rules:\n  - {id: savings, expression: monthly_savings <= monthly_income, message: 'too much'}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("form: household-survey\nrules:\n  - {id: typo, expression: monthly_savngs > 0, message: x}\n")

    pushed = rules_cli(db_url, "push", "--org", "acme", good, broken)
    assert pushed.returncode == 1
    assert "acme/household-survey: saved as version 1, 1 rule(s) and 0 expectation(s)" in pushed.stdout
    assert f"{broken}: rule 'typo': expression 'monthly_savngs > 0': unknown answer key 'monthly_savngs'" in pushed.stderr
    versions = conn.execute("""SELECT o.slug, rv.version, rv.created_by FROM rules_versions rv
                                 JOIN forms f ON f.id = rv.form_id JOIN organizations o ON o.id = f.organization_id""").fetchall()
    assert [(v["slug"], v["version"], v["created_by"]) for v in versions] == [("acme", 1, "cli:tester")]
    assert "unchanged (version 1)" in rules_cli(db_url, "push", "--org", "acme", good).stdout
    assert rules_cli(db_url, "push", "--org", "nobody", good).returncode == 1

    out = tmp_path / "pulled"
    pulled = rules_cli(db_url, "pull", "--org", "acme", "--dir", out)
    assert pulled.returncode == 0, pulled.stderr
    text = (out / "household-survey.yaml").read_text()
    assert text.startswith("# rules of form household-survey, version 1, saved by cli:tester")
    assert "unchanged (version 1)" in rules_cli(db_url, "push", "--org", "acme", out / "household-survey.yaml").stdout
    assert rules_cli(db_url, "pull", "--org", "rival", "--dir", out).returncode == 1  # rival has no rules


def test_demo_loader_gives_the_demo_forms_the_shipped_rules_once(conn):
    from fieldpipe.dev.demo import load_demo

    load_demo(conn)
    versions = conn.execute("""SELECT f.slug, f.rules_version, rv.created_by FROM forms f
                                 JOIN rules_versions rv ON rv.form_id = f.id ORDER BY f.slug""").fetchall()
    assert [(v["slug"], v["rules_version"], v["created_by"]) for v in versions] == [
        ("household-survey", 1, "demo loader"), ("water-point-audit", 1, "demo loader")]
    # the demo's data team changes a rule through the API; the next `make up` keeps their version
    from fieldpipe.forms import get_form_row
    from fieldpipe.rules.store import save

    form = get_form_row(conn, conn.execute("SELECT id FROM organizations").fetchone()["id"], "water-point-audit")
    save(conn, form, {"rules": []}, "a data team")
    load_demo(conn)
    in_force = conn.execute("SELECT slug, rules_version FROM forms ORDER BY slug").fetchall()
    assert [(f["slug"], f["rules_version"]) for f in in_force] == [
        ("household-survey", 1), ("school-visit", None), ("water-point-audit", 2)]  # school-visit ships no rules
