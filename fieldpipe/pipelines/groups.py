"""Bounded fan-out for pipelines that work form by form: the task count follows the work, not the forms.

A DAG lists its units of work (a form, or a form slug) with their pending rows, `plan()` bin-packs them into
at most `FIELDPIPE_PIPELINE_MAX_GROUPS` groups (default 8) of about equal work, and one mapped task instance
runs each group with `run_group()`. Each Airflow task instance costs about a second of scheduling and a
process start, so 300 forms make at most 8 task instances instead of 300. Work too small to be worth a
task of its own (`FIELDPIPE_PIPELINE_GROUP_ROWS` rows, default 200,000) shares one: on a small
machine each task's start (and Great Expectations' import, 6-15 s) costs more than parallelism gains.

Inside a group every unit stays isolated (issue 11): a unit that fails is logged with its reason (the
unit's own code records it in `pipeline_failures`), the rest of the group proceeds, and the task fails at
the end naming every unit that failed. The task log has one numbered line per unit:

    validate_responses [3/37] household-survey: checked 1200 new or edited responses; flags opened 4, ... (0.8 s)

A DAG uses it like this (`name` is what the log and the UI show, `key` what the work function needs):

    @task
    def plan_groups() -> list[dict]:
        return groups.plan([{"key": form_id, "name": "org/slug", "rows": pending}, ...])

    @task(map_index_template="{{ group_label }}")
    def run(group: dict) -> dict:
        get_current_context()["group_label"] = group["label"]
        return groups.run_group("my_pipeline", group, lambda unit: do_one(unit["key"]))

    run.expand(group=plan_groups())
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import Callable

from fieldpipe.config import Settings
from fieldpipe.pipelines import failures

log = logging.getLogger(__name__)

# A unit's fixed cost in rows: opening a form's batch, its rules and its target costs about as much as
# this many rows, so many empty forms are still spread over the groups.
UNIT_COST_ROWS = 1_000


def cost(unit: dict) -> int:
    return int(unit["rows"]) + UNIT_COST_ROWS


def group_count(units: list[dict], max_groups: int, rows_per_group: int) -> int:
    """As many groups as the work fills (`rows_per_group` each), at most `max_groups`, at least one when
    there is any work, never more than there are units."""
    if not units:
        return 0
    wanted = -(-sum(cost(u) for u in units) // max(rows_per_group, 1))
    return max(1, min(max_groups, len(units), wanted))


def pack(units: list[dict], groups: int) -> list[list[dict]]:
    """Largest first into the lightest group (LPT): every group within one unit of the mean. Ties break
    on the unit's name, so the same work makes the same groups. Units inside a group are in name order."""
    if groups <= 0:
        return []
    heap = [(0, index, []) for index in range(groups)]
    for unit in sorted(units, key=lambda u: (-cost(u), u["name"])):
        load, index, members = heapq.heappop(heap)
        members.append(unit)
        heapq.heappush(heap, (load + cost(unit), index, members))
    packed = [sorted(members, key=lambda u: u["name"]) for _, _, members in sorted(heap, key=lambda g: g[1])]
    return [members for members in packed if members]


def plan(units: list[dict], max_groups: int | None = None, rows_per_group: int | None = None) -> list[dict]:
    """The groups to map one task instance over: [{"label", "units": [{"key", "name", "rows"}, ...]}, ...]."""
    settings = Settings.from_env().pipelines
    max_groups = max_groups if max_groups is not None else settings.max_groups
    rows_per_group = rows_per_group if rows_per_group is not None else settings.group_rows
    packed = pack(units, group_count(units, max_groups, rows_per_group))
    planned = []
    for number, members in enumerate(packed, 1):
        rows = sum(u["rows"] for u in members)
        names = ", ".join(u["name"] for u in members[:3]) + (f", +{len(members) - 3}" if len(members) > 3 else "")
        planned.append({"label": f"group {number}/{len(packed)}: {len(members)} form(s), {rows:,} rows ({names})",
                        "units": members})
    log.info("%d form(s), %s pending rows in %d group(s)", len(units), f"{sum(u['rows'] for u in units):,}",
             len(planned))
    return planned


def run_group(pipeline: str, group: dict, work: Callable[[dict], str]) -> dict:
    """Run `work(unit)` for each unit of the group, each isolated from the others; `work` returns the
    unit's summary line and records its own failure in `pipeline_failures`.

    After every unit had its turn: re-raise the first failure a retry may cure (the task retries the group;
    the work is idempotent), else raise `FormFailed` naming each failed unit (not retried: the next run
    tries them again), else return the counts."""
    units = group["units"]
    log.info("%s %s", pipeline, group["label"])  # the task log's first line: what this task has to do, in numbers
    failed: dict[str, str] = {}
    transient: Exception | None = None
    started = time.monotonic()
    for number, unit in enumerate(units, 1):
        unit_started = time.monotonic()
        prefix = f"{pipeline} [{number}/{len(units)}] {unit['name']}"
        try:
            summary = work(unit)
        except Exception as err:  # one unit's failure never stops the others
            failed[unit["name"]] = failures.describe(err)
            log.error("%s: FAILED, skipped until the next run: %s", prefix, failed[unit["name"]])
            if transient is None and failures.is_transient(err):
                transient = err
            continue
        log.info("%s: %s (%.1f s)", prefix, summary, time.monotonic() - unit_started)
    log.info("%s: %d of %d form(s) done, %d failed, in %.1f s", pipeline, len(units) - len(failed), len(units),
             len(failed), time.monotonic() - started)
    if transient is not None:
        raise transient
    if failed:
        raise failures.FormFailed(f"{pipeline}: {len(failed)} of {len(units)} form(s) failed:\n"
                                  + "\n".join(f"- {name}: {reason}" for name, reason in failed.items()))
    return {"forms": len(units), "rows": sum(u["rows"] for u in units)}
