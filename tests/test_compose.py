"""docker-compose.yaml and the Dockerfile point at things that exist (Docker cannot run here).

Every service's command must resolve: `fieldpipe ...` parses with our CLI, `airflow <command>` is an
Airflow command, `gunicorn module:app` names a module with that attribute; every mounted host path exists;
the Airflow services get every setting `make up` uses; the image installs the pinned requirements.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from fieldpipe.dev.airflow_runtime import airflow_env, local_secrets
from fieldpipe.pipelines.names import CONNECTION_IDS
from fieldpipe.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name, service in SERVICES.items() if "AIRFLOW_HOME" in (service.get("environment") or {})]
ONE_SHOT = {"init"}
IMAGES = {"postgres", "redis"}  # services running someone else's image, with its own commands


def commands(service: dict) -> list[list[str]]:
    """The command lines a service runs (`sh -c "a && b"` is two)."""
    command = service.get("command")
    if command is None:
        return []
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in re.split(r"&&|;", argv[2])]
    return [argv]


def airflow_command_names() -> set[str]:
    from airflow.cli.cli_parser import airflow_commands

    return {command.name for command in airflow_commands}


def module_defines(module: str, attribute: str) -> bool:
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        return False
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == attribute for t in node.targets)
               for node in tree.body)


def test_the_expected_services_are_there():
    assert {"postgres", "init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "api"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("name", [n for n in SERVICES if n not in IMAGES])
def test_every_command_resolves_to_something_in_the_repository(name):
    lines = commands(SERVICES[name])
    assert lines, f"{name} has no command"
    for argv in lines:
        program, args = argv[0], argv[1:]
        if program == "fieldpipe":
            build_parser().parse_args(args)  # SystemExit (test error) on an unknown subcommand
        elif program == "airflow":
            assert args[0] in airflow_command_names(), f"{name}: `airflow {args[0]}` is not an Airflow command"
        elif program == "gunicorn":
            module, _, attribute = args[0].partition(":")
            assert module_defines(module, attribute), f"{name}: {args[0]} does not exist"
        else:
            pytest.fail(f"{name}: unexpected program {program!r}")


def test_the_celery_profile_adds_a_broker_and_two_workers_every_airflow_service_can_reach():
    assert SERVICES["redis"]["profiles"] == SERVICES["airflow-worker"]["profiles"] == ["celery"]
    assert SERVICES["airflow-worker"]["deploy"]["replicas"] == 2
    assert commands(SERVICES["airflow-worker"]) == [["airflow", "celery", "worker"]]
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"  # the same on every component
    assert "profiles" not in SERVICES["airflow-scheduler"]  # the rest runs in both modes


def test_init_migrates_both_databases():
    lines = [" ".join(argv) for argv in commands(SERVICES["init"])]
    assert lines == ["fieldpipe db migrate", "fieldpipe airflow init"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_mounted_host_path_exists_and_every_named_volume_is_declared(name):
    for volume in SERVICES[name].get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith((".", "/")):
            assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
        else:
            assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


@pytest.mark.parametrize("name", [n for n in SERVICES if n not in ONE_SHOT])
def test_every_long_running_service_has_a_healthcheck(name):
    test = SERVICES[name].get("healthcheck", {}).get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_get_the_same_settings_as_make_up(name, tmp_path):
    env = SERVICES[name]["environment"]
    expected = airflow_env("postgresql://h/app", "postgresql://h/airflow", Path("/home"))
    expected.update(local_secrets(tmp_path))  # shared by all components, or task tokens are rejected
    assert set(expected) <= set(env), f"{name} misses {sorted(set(expected) - set(env))}"
    assert {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in CONNECTION_IDS} <= set(env)
    mounts = dict(v.split(":")[:2][::-1] for v in SERVICES[name]["volumes"])
    assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
    assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    if name != "init":
        assert SERVICES[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_the_image_installs_the_pinned_requirements_then_the_project():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^COPY requirements\.txt", dockerfile, re.M)
    install = dockerfile.index("pip install -r requirements.txt")
    assert install < dockerfile.index("pip install --no-deps -e .")
    assert (REPO / "requirements.txt").exists()
    for name, service in SERVICES.items():
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").exists(), name


def served_with(argv: list[str], monkeypatch) -> tuple:
    """(worker class, workers, threads) gunicorn runs `argv` with, from the repository (where ./gunicorn.conf.py is)."""
    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.chdir(REPO)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr("sys.argv", ["gunicorn", *argv[1:]])
    cfg = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    return cfg.worker_class_str, cfg.workers, cfg.threads


def test_the_api_is_served_the_same_way_by_make_up_compose_the_image_and_the_benchmarks(monkeypatch):
    from bench.bench_ingest import gunicorn_command
    from fieldpipe.dev.devserver import _services

    [make_up] = [s.command for s in _services("postgresql://h/app", {}, "local") if s.name == "api"]
    image = json.loads(re.search(r"^CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), re.M).group(1))
    ways = {"make up": make_up, "compose": commands(SERVICES["api"])[0], "image": image,
            "benchmarks": gunicorn_command("api.wsgi:app", 5000)}
    served = {name: served_with(argv, monkeypatch) for name, argv in ways.items()}
    # gunicorn's defaults would be one sync worker: the configuration decides, everywhere
    assert set(served.values()) == {("gthread", 4, 4)}, served
