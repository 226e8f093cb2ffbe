"""docker-compose.yml, the Dockerfile and .env.example against what the code really uses.

No Docker engine runs here, so the compose file is parsed and each service checked: its
command runs (the same executable, options and modules, with `--help`/`--check-config`), every
environment variable is one the code reads, URLs point at services and ports that exist, and
the web service passes `check --deploy` with the values .env.example suggests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "minio", "web", "worker", "beat")
SECRET_KEY = secrets.token_urlsafe(50)
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    # The secrets a user must fill in.
    values.update(SECRET_KEY=SECRET_KEY, POSTGRES_PASSWORD="pgsecret", MINIO_ROOT_PASSWORD="miniosecret")
    return values


def interpolate(value, variables: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ (a literal $)."""
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        name, operator, argument = match.groups()
        current = variables.get(name)
        if operator in (":-", "-"):
            return current if current not in (None, "") else argument
        if operator in (":?", "?"):
            if current in (None, ""):
                raise AssertionError(f"{name} is required: {argument}")
            return current
        return current or ""

    return VARIABLE.sub(replace, value).replace("$$", "$")


def service_env(compose, name, variables) -> dict[str, str]:
    environment = compose["services"][name].get("environment", {})
    return {key: str(interpolate(value, variables)) for key, value in environment.items()}


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    block = re.search(r"^ENV (.+?)(?=^\S)", text, re.S | re.M).group(1)
    return dict(pair.split("=", 1) for pair in re.findall(r"([A-Z_]+=\S+)", block))


def container_env(compose, name, tmp_path) -> dict[str, str]:
    """The environment a process in that container would get, with local paths for the image's."""
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}}
    env.update(dockerfile_env())
    env.update(service_env(compose, name, env_example()))
    env.update(REGISTRY_DATA_DIR=str(tmp_path / "var"), REGISTRY_STATIC_ROOT=str(tmp_path / "static"),
               DJANGO_SETTINGS_MODULE="registry.settings")
    return env


def variables_read_by_the_code() -> set[str]:
    found = set()
    pattern = re.compile(r'(?:os\.environ\.get\(|os\.environ\[|env_bool\(|env_list\()\s*"([A-Z_0-9]+)"')
    for path in (ROOT / "registry").rglob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


def command_of(compose, name) -> list[str]:
    command = compose["services"][name]["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    return interpolate(command, env_example())


def run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def executable(argv: list[str]) -> list[str]:
    """The container's command as this machine runs it (the same Python and packages)."""
    program = {"python": [sys.executable], "gunicorn": [sys.executable, "-m", "gunicorn"],
               "celery": [sys.executable, "-m", "celery"]}
    assert argv[0] in program, f"unexpected program {argv[0]}"
    return program[argv[0]] + argv[1:]


# --- shape -----------------------------------------------------------------------------------

def test_every_service_the_spec_names_is_there(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "minio"} <= set(services)
    for name in APP_SERVICES:
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == "model-registry:latest", name  # built once, run four ways


def test_long_running_services_have_health_checks_and_restart(compose):
    for name in LONG_RUNNING:
        service = compose["services"][name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_depends_on_waits_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ("migrate", "minio-init") else "service_healthy"
            assert rule["condition"] == expected, (name, dependency)
            if expected == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for name in ("web", "worker", "beat"):
        assert "migrate" in services[name]["depends_on"], f"{name} could start before the schema exists"


def test_named_volumes_are_declared_and_data_is_kept(compose):
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"undeclared volume {source}"
            used.add(source)
    assert used == declared
    mounts = {name: [v.split(":")[1] for v in s.get("volumes", [])] for name, s in compose["services"].items()}
    assert "/var/lib/postgresql/data" in mounts["postgres"]
    assert "/data" in mounts["minio"] and "/data" in mounts["redis"]


def test_exactly_one_beat(compose):
    beat = compose["services"]["beat"]
    assert "deploy" not in beat and "scale" not in beat
    assert "--beat" not in command_of(compose, "worker")  # no second scheduler inside a worker


# --- environment -----------------------------------------------------------------------------

def test_every_variable_given_to_the_registry_is_read_by_the_code(compose):
    read = variables_read_by_the_code()
    for name in APP_SERVICES:
        unknown = set(service_env(compose, name, env_example())) - read
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
    assert set(dockerfile_env()) - read <= {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                                            "PIP_DISABLE_PIP_VERSION_CHECK"}


def test_the_readme_documents_every_variable_the_code_reads():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## Operations")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = variables_read_by_the_code() - documented
    assert not missing, f"variables missing from README's Configuration table: {sorted(missing)}"


def test_required_secrets_are_asked_for(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    required = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) == ":?"}
    assert required == {"SECRET_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"}
    example = (ROOT / ".env.example").read_text()
    for name in required:
        assert re.search(rf"^{name}=$", example, re.M), f".env.example must leave {name} for the user to set"
    with pytest.raises(AssertionError, match="SECRET_KEY"):
        service_env(compose, "web", {k: v for k, v in env_example().items() if k != "SECRET_KEY"})
    # Every variable the file interpolates is either required or has a default or is in .env.example.
    for match in VARIABLE.finditer(text):
        name, operator, _ = match.groups()
        assert operator or name in env_example(), f"${{{name}}} has no default"


def test_urls_point_at_the_services(compose):
    env = service_env(compose, "web", env_example())
    services = compose["services"]

    database = urlsplit(env["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgres" and database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres["POSTGRES_USER"] and database.path == f"/{postgres['POSTGRES_DB']}"
    assert database.password == "pgsecret"  # the same POSTGRES_PASSWORD as the postgres service

    broker = urlsplit(env["REDIS_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis" and broker.port == 6379

    s3 = urlsplit(env["AWS_S3_ENDPOINT_URL"])
    assert s3.hostname == "minio" and s3.port == 9000
    assert "--address" in services["minio"]["command"]
    assert services["minio"]["command"][services["minio"]["command"].index("--address") + 1] == ":9000"
    minio = service_env(compose, "minio", env_example())
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert any(p.split(":")[-1] == "9000" for p in interpolate(services["minio"]["ports"], env_example()))

    init = service_env(compose, "minio-init", env_example())
    script = interpolate(services["minio-init"]["command"][0], env_example())
    assert "http://minio:9000" in script and "mc mb --ignore-existing" in script
    assert init["REGISTRY_S3_BUCKET"] == env["REGISTRY_S3_BUCKET"]
    assert init["MINIO_ROOT_PASSWORD"] == minio["MINIO_ROOT_PASSWORD"]

    for name in APP_SERVICES:  # the four processes of the registry see one configuration
        assert service_env(compose, name, env_example()).items() >= {
            k: v for k, v in env.items() if k not in WEB_ONLY
        }.items(), name


WEB_ONLY = {"REGISTRY_BIND", "WEB_CONCURRENCY", "REGISTRY_WEB_CONNECTIONS", "REGISTRY_WEB_IDLE_TIMEOUT", "DATABASE_POOL_SIZE"}


# --- commands --------------------------------------------------------------------------------

def test_web_command_loads_the_app_and_listens_on_the_published_port(compose, tmp_path):
    env = container_env(compose, "web", tmp_path)
    command = command_of(compose, "web")
    assert command[0] == "gunicorn"
    result = run(executable(command) + ["--check-config"], env)
    assert result.returncode == 0, result.stdout + result.stderr

    script = "import json, registry.gunicorn_conf as c; print(json.dumps({'bind': c.bind, 'workers': c.workers, 'connections': c.worker_connections}))"
    config = json.loads(run([sys.executable, "-c", script], env).stdout)
    port = config["bind"].rsplit(":", 1)[1]
    published = interpolate(compose["services"]["web"]["ports"], env_example())
    assert [p.split(":")[-1] for p in published] == [port]
    assert config["workers"] == int(env_example()["WEB_CONCURRENCY"])

    probe = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in probe
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile and f"http://127.0.0.1:{port}/healthz" in dockerfile


@pytest.mark.parametrize("name", ["worker", "beat", "migrate"])
def test_process_commands_parse(compose, tmp_path, name):
    """Click/argparse stop at an unknown option before reaching the trailing --help."""
    env = container_env(compose, name, tmp_path)
    command = command_of(compose, name)
    result = run(executable(command) + ["--help"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    if command[0] == "celery":
        assert command[1:3] == ["-A", "registry"]


def test_celery_processes_use_the_registry_settings(compose, tmp_path):
    env = container_env(compose, "worker", tmp_path)
    script = ("import json; from registry.celery import app; app.loader.import_default_modules(); "
              "print(json.dumps({'broker': app.conf.broker_url, 'queue': app.conf.task_default_queue, "
              "'schedule': app.conf.beat_schedule_filename, "
              "'tasks': sorted(t for t in app.tasks if t.startswith('registry.'))}))")
    result = run([sys.executable, "-c", script], env)
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout)
    assert conf["broker"] == "redis://redis:6379/0" and conf["queue"] == "registry"
    beat = command_of(compose, "beat")
    schedule = beat[beat.index("--schedule") + 1]
    assert schedule.startswith("/app/var/")  # on the beat-data volume
    assert conf["schedule"] == str(Path(env["REGISTRY_DATA_DIR"]) / Path(schedule).name)
    assert {"registry.tasks.format_hash", "registry.tasks.format_introspect", "registry.tasks.formats_reconcile",
            "registry.tasks.integrity_sweep", "registry.tasks.storage_orphans_sweep"} <= set(conf["tasks"])
    probe = compose["services"]["worker"]["healthcheck"]["test"][1]
    assert probe.startswith("celery -A registry inspect ping")


def test_web_settings_pass_check_deploy_with_the_example_values(compose, tmp_path):
    env = container_env(compose, "web", tmp_path)
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    script = ("import django, json; django.setup(); from django.conf import settings; "
              "print(json.dumps([settings.STORAGES['default']['BACKEND'], settings.DEBUG]))")
    result = run([sys.executable, "-c", script], env)
    assert json.loads(result.stdout) == ["registry.s3.StreamingS3Storage", False], result.stderr


# --- the image -------------------------------------------------------------------------------

def test_dockerfile(compose):
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "collectstatic --noinput" in text
    assert json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1)) == command_of(compose, "web")
    for folder in ("registry", "dashboard", "templates", "static"):  # what the settings read from BASE_DIR
        assert re.search(rf"^COPY {folder} \./{folder}$", text, re.M), folder
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", ".env"} <= set(ignored)


def test_health_check_commands_are_real(compose, tmp_path):
    services = compose["services"]
    worker_probe = shlex.split(interpolate(services["worker"]["healthcheck"]["test"][1], {}).replace("$HOSTNAME", "x"))
    env = container_env(compose, "worker", tmp_path)
    result = run(executable(worker_probe) + ["--help"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("web", "beat"):  # python -c snippets: at least valid Python using what the image has
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"{name}-healthcheck", "exec")
    beat_probe = services["beat"]["healthcheck"]["test"][3]
    assert "REDIS_URL" in beat_probe
    result = run([sys.executable, "-c", beat_probe], {**env, "REDIS_URL": REDIS_URL_FOR_PROBE})
    assert result.returncode == 0, result.stderr  # reaches a live Redis: the probe works
    result = run([sys.executable, "-c", beat_probe], {**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode != 0  # and fails when it cannot


REDIS_URL_FOR_PROBE = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
