"""Run every benchmark (`bench/bench_*.py`, each with `run() -> dict`) and write bench/results/latest.json.

Each figure is {"value", "unit", "baseline", "ratio", "target"} with its baseline measured in the same run.
`python -m bench.run ingest_single dag_parse` runs only the named figures' modules.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.json"


def main(selected: list[str]) -> int:
    modules = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if selected:
        modules = [m for m in modules if m.removeprefix("bench_") in selected]
    results: dict[str, dict] = json.loads(RESULTS.read_text()) if RESULTS.exists() and selected else {}
    failed = 0
    for name in modules:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            figures = importlib.import_module(f"bench.{name}").run()
        except Exception:
            traceback.print_exc()
            failed += 1
            continue
        # A module reports one figure (named after it) or several ({"figure": {...}, ...}).
        if "value" in figures:
            figures = {name.removeprefix("bench_"): figures}
        for figure, result in figures.items():
            results[figure] = result
            print(f"   {figure}: {result['value']} {result['unit']} (baseline {result['baseline']}, "
                  f"ratio {result['ratio']}, target {result['target']})", flush=True)
        print(f"   took {time.monotonic() - started:.0f} s", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
