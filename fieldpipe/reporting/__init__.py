"""Reporting without exposing people: every output that leaves fieldpipe for analysts, masked once.

- `columns`: the one SELECT per form (typed, masked) that every output below reads.
- `views`: the `reporting` schema's per-form views for BI tools, rebuilt when a form's questions change.
- `archive`: daily Parquet partitions of each form in object storage, idempotent per day.
- `downloads`: streamed CSV and XLSX downloads with an ETag.
"""
