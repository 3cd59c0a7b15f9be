"""Prints how long the dags/ folder took to parse (collected by test_dag_integrity.py)."""

PARSE_REPORTS: list[dict] = []


def pytest_terminal_summary(terminalreporter):
    for report in PARSE_REPORTS:
        slowest = sorted(report["file_seconds"].items(), key=lambda item: -item[1])[:3]
        terminalreporter.write_line(
            f"dags/ parse: {len(report['dags'])} DAGs from {len(report['files'])} files in "
            f"{report['parse_seconds']:.2f} s (+ {report['import_seconds']:.2f} s importing Airflow); slowest: "
            + (", ".join(f"{name} {seconds:.2f} s" for name, seconds in slowest) or "none"))
