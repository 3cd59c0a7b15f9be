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
