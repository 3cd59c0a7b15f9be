"""Post-submission tasks per form (docs/tasks.md): what happens after a form is submitted, installed per form.

`kinds` (the plugin contract and the registry of entry points), `builtin` (the kinds fieldpipe ships),
`store` (a form's task list), `hooks` (what storing a response does for its tasks), `ledger` (one run per
task and response revision), `runner` (async batches and sync runs within a budget), `replay` (history
through a task).
"""
