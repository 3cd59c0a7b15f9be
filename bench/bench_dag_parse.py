"""dag_parse: seconds to parse the whole dags/ folder in one fresh process (what the dag-processor
pays on every parse loop), against the same DAG files with pandas and great_expectations imported at
module level (the naive way), measured in the same run. Target: under 2 s.
"""

from __future__ import annotations

import ast
import shutil
import statistics
import tempfile
from pathlib import Path

from fieldpipe.config import REPO_ROOT
from fieldpipe.dev.dag_parse import parse_in_subprocess

DAGS = REPO_ROOT / "dags"
RUNS = 3
HEAVY_IMPORTS = "import great_expectations  # noqa\nimport pandas  # noqa\n"


def with_heavy_imports(source: str) -> str:
    """The same file with the heavy imports at module level, after its docstring and __future__ imports."""
    body = ast.parse(source).body
    preamble = [node for node in body[:3]
                if isinstance(node, ast.ImportFrom) and node.module == "__future__"
                or isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)]
    cut = preamble[-1].end_lineno if preamble else 0
    lines = source.splitlines(keepends=True)
    return "".join(lines[:cut]) + HEAVY_IMPORTS + "".join(lines[cut:])


def run() -> dict:
    reports = [parse_in_subprocess(DAGS) for _ in range(RUNS)]
    value = statistics.median(r["parse_seconds"] for r in reports)
    with tempfile.TemporaryDirectory(prefix="fieldpipe-naive-dags-") as tmp:
        naive = Path(tmp)
        for path in DAGS.glob("*.py"):
            (naive / path.name).write_text(with_heavy_imports(path.read_text()))
        shutil.copytree(DAGS, naive, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        baseline_report = parse_in_subprocess(naive)
    baseline = baseline_report["parse_seconds"]
    assert len(baseline_report["dags"]) == len(reports[0]["dags"]), "the naive copy must load the same DAGs"
    return {
        "value": round(value, 3),
        "unit": "s",
        "baseline": round(baseline, 3),
        "ratio": round(baseline / value, 1) if value else None,
        "target": "< 2 s",
        "dags": len(reports[0]["dags"]),
        "airflow_import_s": reports[0]["import_seconds"],
    }


if __name__ == "__main__":
    print(run())
