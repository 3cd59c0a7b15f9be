"""The house rules of the layout, checked over the whole tree so a new module cannot forget them.

- The domain, the API, the DAGs and the operators never import the dev tooling (`fieldpipe.dev`); only the
  CLI does (tests and benchmarks may).
- Each asset is declared once, in `fieldpipe.pipelines.assets`; DAGs import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV_PACKAGE = "fieldpipe.dev"


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, at any depth (function-local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def production_modules() -> list[Path]:
    """Every module that runs in production: the package minus dev tooling and the CLI, the API, DAGs, plugins."""
    paths = [p for p in (REPO / "fieldpipe").rglob("*.py")
             if p.relative_to(REPO).parts[:2] != ("fieldpipe", "dev") and p.relative_to(REPO) != Path("fieldpipe/cli.py")]
    for folder in ("api", "dags", "plugins"):
        paths += (REPO / folder).rglob("*.py")
    return sorted(paths)


def test_the_checker_sees_imports_at_any_depth():
    source = "import os\ndef f():\n    from fieldpipe.dev.demo import load_demo\n    from fieldpipe import dev\n"
    assert {"fieldpipe.dev.demo", "fieldpipe.dev"} <= imported_modules(source)


def test_no_production_module_imports_the_dev_tooling():
    modules = production_modules()
    assert len(modules) > 40 and REPO / "fieldpipe" / "forms.py" in modules
    assert not any("fieldpipe/dev/" in p.as_posix() for p in modules)
    offenders = {p.relative_to(REPO).as_posix(): sorted(m for m in imported_modules(p.read_text())
                                                        if m == DEV_PACKAGE or m.startswith(DEV_PACKAGE + "."))
                 for p in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_assets_are_declared_once_in_the_pipeline_vocabulary():
    declaring = sorted(p.relative_to(REPO).as_posix() for p in production_modules()
                       if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Asset"
                              for n in ast.walk(ast.parse(p.read_text()))))
    assert declaring == ["fieldpipe/pipelines/assets.py"]


def readme_table_paths() -> set[str]:
    """The paths named in the README's "Where things live" table."""
    import re

    text = (REPO / "README.md").read_text()
    table = text[text.index("Where things live:"):]
    table = table[:table.index("\n\n", table.index("| concept |"))]
    return {m for m in re.findall(r"`([^`]+)`", table) if "/" in m}


def test_the_readme_table_of_where_things_live_matches_the_tree():
    named = readme_table_paths()
    assert {p for p in named if not (REPO / p.rstrip("/")).exists()} == set()
    # Every module and subpackage of the package root has a row.
    rooms = {f"fieldpipe/{p.name}" + ("/" if p.is_dir() else "") for p in (REPO / "fieldpipe").iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert rooms - named == set()


def reads_the_environment(source: str) -> bool:
    """Whether a module reads environment variables (os.environ, os.getenv, or either imported by name)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "getenv", "environb", "getenvb"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "getenv") for a in node.names):
            return True
    return False


def test_the_checker_sees_environment_reads():
    assert reads_the_environment("import os\nx = os.environ.get('A')\n")
    assert reads_the_environment("from os import getenv\n")
    assert not reads_the_environment("import os\nos.replace('a', 'b')\n")


def test_settings_are_the_only_reader_of_the_environment():
    readers = sorted(p.relative_to(REPO).as_posix() for p in production_modules() if reads_the_environment(p.read_text()))
    assert readers == ["fieldpipe/config.py"]


def organization_argument_problems(source: str) -> list[str]:
    """Functions that name the organization `org_id`, or take `organization_id` anywhere but right after
    `conn` (first when there is no connection): the domain's one argument order is (conn, organization_id, ...)."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        names = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        if "org_id" in names:
            problems.append(f"{node.name}: org_id")
        elif "organization_id" in names:
            expected = ["conn", "organization_id"] if "conn" in names else ["organization_id"]
            if names[:len(expected)] != expected:
                problems.append(f"{node.name}: ({', '.join(names)})")
    return problems


def test_the_checker_sees_organization_arguments_out_of_order():
    assert organization_argument_problems("def f(conn, org_id): pass") == ["f: org_id"]
    assert organization_argument_problems("def f(conn, page, organization_id): pass") == \
        ["f: (conn, page, organization_id)"]
    assert organization_argument_problems("def f(organization_id, conn): pass") == ["f: (organization_id, conn)"]
    assert organization_argument_problems("def f(conn, organization_id, page): pass\n"
                                          "def key(organization_id, name): pass") == []


def test_the_domain_takes_conn_then_organization_id():
    offenders = {p.relative_to(REPO).as_posix(): organization_argument_problems(p.read_text())
                 for p in production_modules() + sorted((REPO / "fieldpipe" / "dev").rglob("*.py"))}
    assert {path: found for path, found in offenders.items() if found} == {}
