"""Two example task kinds: `answer_length` (sync: the length of one text answer, in the submit answer) and
`jsonl_log` (async: one JSON line per response revision appended to a file). Both misbehave on request, so
tests can see that a plugin's failure stays its own: `answer_length` sleeps `sleep_ms` or raises on the
answer "boom"; `jsonl_log` raises on a batch holding the answer "poison"."""

import json
import time


class AnswerLength:
    mode = "sync"
    config_schema = {
        "type": "object",
        "properties": {"question": {"type": "string", "minLength": 1},
                       "sleep_ms": {"type": "integer", "minimum": 0, "maximum": 60000}},
        "required": ["question"],
        "additionalProperties": False,
    }

    def check(self, config, form):
        if config["question"] not in {q["key"] for q in form["questions"]}:
            return [_FieldError("config.question", "unknown_question",
                                f"form {form['slug']!r} has no question {config['question']!r}")]
        return []

    def run_sync(self, submission):
        time.sleep(submission["config"].get("sleep_ms", 0) / 1000)
        answer = submission["answers"].get(submission["config"]["question"], "")
        if answer == "boom":
            raise RuntimeError("the example kind was asked to fail")
        return {"length": len(str(answer))}


class JsonlLog:
    mode = "async"
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def run_async(self, batch):
        if any("poison" in map(str, item["answers"].values()) for item in batch.items):
            raise ValueError("a poisoned response")
        outcomes = {}
        for item in batch.items:
            with open(item["config"]["path"], "a", encoding="utf-8") as out:
                out.write(json.dumps({"submission_id": item["submission_id"], "revision": item["revision"],
                                      "event": item["event"]}) + "\n")
            outcomes[item["run_id"]] = {"logged": True}
        return outcomes


def _FieldError(field, code, message):
    # The error type is fieldpipe's; imported late so the package itself loads without it.
    from fieldpipe.problems import FieldError

    return FieldError(field, code, message)
