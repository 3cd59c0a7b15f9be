"""Parse a DAGs folder as the dag-processor does, in a fresh process, and check the project's DAG conventions.

The dag-processor re-parses every DAG file every few seconds, so whatever a file does at import time
it does all day long. The child process therefore records, per DAG file, every heavy module imported
and every database connection attempted while the file was being parsed (the connection is refused).
Used by the DAG integrity test, `make bench` (figure `dag_parse`) and `fieldpipe airflow check-dags`.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fieldpipe.config import REPO_ROOT
from fieldpipe.pipelines.names import POOLS

HEAVY_MODULES = ("pandas", "great_expectations", "pyarrow")
OWNER = "fieldpipe"
MIN_RETRIES = 2
# The module docstring is the DAG's documentation in the UI; it must answer these questions.
DOC_TOPICS = {
    "what it reads": ("read",),
    "what it writes": ("write",),
    "its schedule": ("schedule",),
    "how to rerun or backfill it": ("rerun", "re-run", "backfill"),
}
DEADLINE_CALLBACK = "fieldpipe.pipelines.notify.on_deadline_missed"
KNOWN_POOLS = {"default_pool", *POOLS}
LEGACY_IMPORT = re.compile(r"^\s*(from|import)\s+airflow\.(decorators|models|operators|sensors)\b", re.M)


def parse_in_subprocess(dags_folder: Path, env: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """Parse `dags_folder` in a fresh Python process and return its report (see `_report`)."""
    with tempfile.TemporaryDirectory(prefix="fieldpipe-dag-parse-") as tmp:
        out = Path(tmp) / "report.json"
        child_env = {**os.environ, **(env or {}),
                     "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                     "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        child_env.setdefault("AIRFLOW_HOME", tmp)
        child_env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
        # Parsing needs no metadata database; a closed port makes any attempt fail loudly.
        child_env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg://parse-only@127.0.0.1:9/none")
        result = subprocess.run([sys.executable, "-m", "fieldpipe.dev.dag_parse", str(dags_folder), str(out)],
                                env=child_env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 or not out.exists():
            raise RuntimeError(f"parsing {dags_folder} crashed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())


def convention_problems(report: dict) -> list[str]:
    """Every way the parsed folder breaks the DAG conventions, one readable line each (empty = all good)."""
    folder = Path(report["folder"])
    problems = [f"{file}: does not import: {error.strip()}" for file, error in sorted(report["import_errors"].items())]
    problems += [f"{hit['file']}: imports {hit['module']} at parse time; import it inside the task"
                 for hit in report["heavy_imports"]]
    problems += [f"{hit['file']}: opens a database connection at parse time; connect inside the task"
                 for hit in report["db_access"]]
    dags_per_file: dict[str, list[str]] = {}
    for dag in report["dags"]:
        dags_per_file.setdefault(dag["file"], []).append(dag["dag_id"])
    for file, dag_ids in sorted(dags_per_file.items()):
        if len(dag_ids) > 1:
            problems.append(f"{file}: defines {len(dag_ids)} DAGs ({', '.join(sorted(dag_ids))}); one DAG per file")
        source = (folder / file).read_text()
        if LEGACY_IMPORT.search(source):
            problems.append(f"{file}: imports from a legacy airflow path; use `from airflow.sdk import ...`")
    for dag in report["dags"]:
        problems += _dag_problems(dag, folder)
    return problems


def _dag_problems(dag: dict, folder: Path) -> list[str]:
    where = f"{dag['file']}: DAG {dag['dag_id']!r}"
    problems = []
    if dag["dag_id"] != Path(dag["file"]).stem:
        problems.append(f"{where}: dag_id must equal the file name {Path(dag['file']).stem!r}")
    module_doc = ast.get_docstring(ast.parse((folder / dag["file"]).read_text())) or ""
    doc = inspect.cleandoc(dag["doc_md"] or "")
    if not module_doc:
        problems.append(f"{where}: the module has no docstring (it is the DAG's doc_md)")
    elif doc != inspect.cleandoc(module_doc):
        problems.append(f"{where}: doc_md is not the module docstring (pass doc_md=__doc__)")
    else:
        missing = [topic for topic, words in DOC_TOPICS.items() if not any(w in doc.lower() for w in words)]
        if missing:
            problems.append(f"{where}: doc_md does not say {', '.join(missing)}")
    if not dag["tags"]:
        problems.append(f"{where}: has no tags")
    if not dag["start_date_aware"]:
        problems.append(f"{where}: needs a timezone-aware start_date")
    for deadline in dag["deadlines"]:
        if deadline["callback"] != DEADLINE_CALLBACK:
            problems.append(f"{where}: a deadline calls {deadline['callback']}, so its misses reach no operator; "
                            "use fieldpipe.pipelines.defaults.deadline_alert")
    for task in dag["tasks"]:
        at = f"{where} task {task['task_id']!r}"
        if task["owner"] != OWNER:
            problems.append(f"{at}: owner is {task['owner']!r}, expected {OWNER!r}")
        if task["retries"] < MIN_RETRIES:
            problems.append(f"{at}: retries={task['retries']}, expected at least {MIN_RETRIES}")
        if not task["retry_exponential_backoff"]:
            problems.append(f"{at}: retry_exponential_backoff is off")
        if task["pool"] not in KNOWN_POOLS:
            # A task in a pool that does not exist waits forever without an error.
            problems.append(f"{at}: pool {task['pool']!r} is not created at init (add it to fieldpipe.pipelines.names.POOLS)")
    return problems


# --- the child process ------------------------------------------------------------------------------

class _ParseWatch:
    """Import hook and connect guard that attribute work to the DAG file being parsed."""

    def __init__(self, folder: Path):
        self.folder = str(folder.resolve()) + os.sep
        self.heavy_imports: list[dict] = []
        self.db_access: list[dict] = []

    def dag_file_on_stack(self) -> str | None:
        frame = sys._getframe(1)
        while frame:
            filename = os.path.realpath(frame.f_code.co_filename)
            if filename.startswith(self.folder):
                return filename[len(self.folder):]
            frame = frame.f_back
        return None

    # importlib.abc.MetaPathFinder protocol: only observe, never load anything.
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in HEAVY_MODULES and top not in sys.modules:
            file = self.dag_file_on_stack()
            if file and {"file": file, "module": top} not in self.heavy_imports:
                self.heavy_imports.append({"file": file, "module": top})
        return None

    def guard_connect(self, original):
        def connect(*args, **kwargs):
            file = self.dag_file_on_stack()
            if file:
                self.db_access.append({"file": file})
                raise RuntimeError(f"{file} opened a database connection at parse time")
            return original(*args, **kwargs)
        return connect


def _report(folder: Path) -> dict:
    watch = _ParseWatch(folder)
    sys.meta_path.insert(0, watch)
    import psycopg

    guarded = watch.guard_connect(psycopg.Connection.connect)
    psycopg.connect = guarded
    psycopg.Connection.connect = staticmethod(guarded)

    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.perf_counter()
    bag = DagBag(dag_folder=str(folder))
    parsed = time.perf_counter()

    root = str(folder.resolve()) + os.sep

    def relative(path: str) -> str:
        real = os.path.realpath(path)
        return real[len(root):] if real.startswith(root) else path

    dags = []
    for dag in bag.dags.values():
        start_date = dag.start_date or (dag.default_args or {}).get("start_date")
        dags.append({
            "dag_id": dag.dag_id,
            "file": relative(dag.fileloc),
            "doc_md": dag.doc_md,
            "tags": sorted(dag.tags or []),
            "start_date_aware": bool(start_date and start_date.tzinfo is not None),
            "deadlines": [{"interval_s": alert.interval.total_seconds() if isinstance(alert.interval, timedelta) else None,
                           "callback": alert.callback.path} for alert in (dag.deadline or [])],
            "tasks": [{"task_id": t.task_id, "owner": t.owner, "retries": t.retries or 0,
                       "retry_exponential_backoff": bool(t.retry_exponential_backoff), "pool": t.pool}
                      for t in dag.tasks],
        })
    return {
        "folder": str(folder.resolve()),
        "files": sorted(relative(str(p)) for p in folder.rglob("*.py")),
        "import_seconds": round(imported - started, 3),
        "parse_seconds": round(parsed - imported, 3),
        "file_seconds": {relative(s.file if os.path.isabs(s.file) else str(folder / s.file.lstrip("/"))):
                         round(s.duration.total_seconds(), 3) for s in bag.dagbag_stats},
        "dags": sorted(dags, key=lambda d: d["dag_id"]),
        "import_errors": {relative(path): error for path, error in bag.import_errors.items()},
        "heavy_imports": watch.heavy_imports,
        "db_access": watch.db_access,
    }


if __name__ == "__main__":
    target, out_file = Path(sys.argv[1]), Path(sys.argv[2])
    out_file.write_text(json.dumps(_report(target), default=str))
