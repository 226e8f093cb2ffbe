"""Production settings, checked in fresh processes configured only by environment variables,
as docker-compose configures them (settings are read once, at import)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path, **overrides) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("REGISTRY_", "AWS_")) and key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "registry.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://registry.example.com",
        "REGISTRY_BEHIND_PROXY": "true",
        "REGISTRY_DATA_DIR": str(tmp_path / "var"),
        "REGISTRY_STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or "postgres://registry@postgres:5432/registry",
        "REDIS_URL": "redis://redis:6379/0",
        "REGISTRY_S3_BUCKET": "models",
        "AWS_S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "registry",
        "AWS_SECRET_ACCESS_KEY": "registry-secret",
        "REGISTRY_LOG_FORMAT": "json",
    })
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, **kwargs)


def test_check_deploy_passes_with_production_values(tmp_path):
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_what_is_missing(tmp_path):
    """The check above is real: without the proxy settings it reports HSTS and the https redirect."""
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                 production_env(tmp_path, REGISTRY_BEHIND_PROXY=None, REGISTRY_SECURE_COOKIES="false"))
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, warning


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_key_in_production_fails_loudly(tmp_path, secret):
    result = run([sys.executable, "manage.py", "check"], production_env(tmp_path, SECRET_KEY=secret))
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def test_a_bad_log_format_fails_loudly(tmp_path):
    result = run([sys.executable, "manage.py", "check"], production_env(tmp_path, REGISTRY_LOG_FORMAT="xml"))
    assert result.returncode != 0 and "REGISTRY_LOG_FORMAT" in result.stderr


SHOW_SETTINGS = textwrap.dedent("""
    import json, django
    django.setup()
    from django.conf import settings
    print(json.dumps({
        "DEBUG": settings.DEBUG,
        "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
        "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
        "SECURE_PROXY_SSL_HEADER": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
        "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
        "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
        "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
        "CONN_HEALTH_CHECKS": settings.DATABASES["default"]["CONN_HEALTH_CHECKS"],
        "storage": settings.STORAGES["default"]["BACKEND"],
        "endpoint": settings.STORAGES["default"].get("OPTIONS", {}).get("endpoint_url"),
        "static": settings.STORAGES["staticfiles"]["BACKEND"],
        "first_middleware": settings.MIDDLEWARE[0],
    }))
""")


def test_production_values(tmp_path):
    result = run([sys.executable, "-c", SHOW_SETTINGS], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "ALLOWED_HOSTS": ["registry.example.com"],
        "CONN_HEALTH_CHECKS": True,
        "storage": "registry.s3.StreamingS3Storage",
        "endpoint": "http://minio:9000",
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "first_middleware": "registry.health.HealthCheckMiddleware",
    }
    # The zero-configuration defaults stay the developer's.
    dev = {key: value for key, value in production_env(tmp_path).items()
           if key in {"PATH", "HOME", "DJANGO_SETTINGS_MODULE", "REGISTRY_DATA_DIR"}}
    values = json.loads(run([sys.executable, "-c", SHOW_SETTINGS], dev).stdout)
    assert values["DEBUG"] is True and values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0 and values["storage"].endswith("FileSystemStorage")


SERVE_STATIC = textwrap.dedent("""
    import django, json
    django.setup()
    from django.test import Client
    client = Client(HTTP_HOST="registry.example.com")
    https = {"HTTP_X_FORWARDED_PROTO": "https", "secure": False}
    out = {}
    out["plain_http"] = client.get("/login/").status_code
    login = client.get("/login/", **https)
    out["login"] = login.status_code
    out["hsts"] = login.get("Strict-Transport-Security")
    page = login.content.decode()
    import re
    asset = re.search(r'(/static/[^"]+\\.(?:css|js))"', page).group(1)
    response = client.get(asset, HTTP_ACCEPT_ENCODING="gzip", **https)
    out["asset"] = asset
    out["asset_status"] = response.status_code
    out["asset_cache"] = response.get("Cache-Control")
    out["asset_encoding"] = response.get("Content-Encoding")
    out["bad_host"] = Client(HTTP_HOST="evil.example").get("/login/", **https).status_code
    out["cookie_secure"] = all(c["secure"] for c in login.cookies.values())
    print(json.dumps(out))
""")


def test_static_files_are_served_by_the_app_with_hashed_names(tmp_path):
    env = production_env(tmp_path)
    collected = run([sys.executable, "manage.py", "collectstatic", "--noinput"], env)
    assert collected.returncode == 0, collected.stderr
    result = run([sys.executable, "-c", SERVE_STATIC], env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain_http"] == 301  # to https
    assert out["login"] == 200
    assert out["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert out["cookie_secure"]
    assert out["asset_status"] == 200, out
    assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", out["asset"]), out["asset"]  # a content-hashed name
    assert out["asset_cache"] == "max-age=315360000, public, immutable"
    assert out["asset_encoding"] in ("gzip", "br")
    assert out["bad_host"] == 400


def test_json_logs_from_a_production_process(tmp_path):
    script = "import django, logging; django.setup(); logging.getLogger('registry.test').warning('hello %s', 'ops')"
    result = run([sys.executable, "-c", script], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "hello ops" and entry["level"] == "WARNING" and entry["logger"] == "registry.test"


PRESIGNED_DOWNLOAD_AND_POLICY = textwrap.dedent("""
    import json, django
    django.setup()
    from django.conf import settings
    from registry import storage
    print(json.dumps({
        "url": storage.presigned_download_url("models/abc/model.pkl", filename_header="attachment"),
        "form_action": settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"],
    }))
""")


@pytest.mark.parametrize("storage_env", [
    {"AWS_S3_ENDPOINT_URL": "http://minio:9000"},
    {"AWS_S3_ENDPOINT_URL": "http://minio:9000", "REGISTRY_S3_PUBLIC_ENDPOINT_URL": "https://files.example.com:9443"},
    {"AWS_S3_ENDPOINT_URL": None, "REGISTRY_S3_REGION": "eu-west-1"},
    {"AWS_S3_ENDPOINT_URL": None, "REGISTRY_S3_REGION": "eu-west-1", "REGISTRY_S3_BUCKET": "acme.models"},
    {"AWS_S3_ENDPOINT_URL": None, "AWS_DEFAULT_REGION": "us-east-1"},
], ids=["endpoint", "public-endpoint", "aws", "aws-dotted-bucket", "aws-default-region"])
def test_the_policy_lets_an_acknowledged_download_follow_its_presigned_redirect(tmp_path, storage_env):
    """A flagged file downloads through a form; the API redirects it to a presigned URL, and the
    browser holds that redirect to the policy's form-action: the bucket's origin must be in it."""
    env = production_env(tmp_path, REGISTRY_S3_PRESIGNED_DOWNLOADS="true", **storage_env)
    result = run([sys.executable, "-c", PRESIGNED_DOWNLOAD_AND_POLICY], env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    scheme, _, host = out["url"].split("/", 3)[:3]
    assert f"{scheme}//{host}" in out["form_action"], out
    assert out["form_action"][0] == "'self'"


def test_without_presigned_downloads_forms_post_only_to_the_registry(tmp_path):
    result = run([sys.executable, "-c", PRESIGNED_DOWNLOAD_AND_POLICY], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["url"] is None and out["form_action"] == ["'self'"]


PART_URL_AND_POLICY = textwrap.dedent("""
    import json, django
    django.setup()
    from django.conf import settings
    from registry import storage
    urls = storage.direct_upload_part_urls("models/abc/model.pkl", "upload-1", [1], expires_in=600)
    print(json.dumps({"url": urls[1], "connect_src": settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"]}))
""")


@pytest.mark.parametrize("storage_env", [
    {"AWS_S3_ENDPOINT_URL": "http://minio:9000"},
    {"AWS_S3_ENDPOINT_URL": "http://minio:9000", "REGISTRY_S3_PUBLIC_ENDPOINT_URL": "https://files.example.com:9443"},
    {"AWS_S3_ENDPOINT_URL": None, "REGISTRY_S3_REGION": "eu-west-1"},
    {"AWS_S3_ENDPOINT_URL": None, "REGISTRY_S3_REGION": "eu-west-1", "REGISTRY_S3_BUCKET": "acme.models"},
], ids=["endpoint", "public-endpoint", "aws", "aws-dotted-bucket"])
def test_the_policy_lets_the_dashboard_send_parts_to_the_bucket(tmp_path, storage_env):
    """The dashboard's direct upload PUTs each part to a presigned URL: its origin must be in
    connect-src, and nothing else but the registry's own."""
    env = production_env(tmp_path, **storage_env)
    result = run([sys.executable, "-c", PART_URL_AND_POLICY], env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    scheme, _, host = out["url"].split("/", 3)[:3]
    assert f"{scheme}//{host}" in out["connect_src"], out
    assert out["connect_src"][0] == "'self'" and len(out["connect_src"]) <= 3


def test_on_local_storage_pages_connect_only_to_the_registry(tmp_path):
    env = production_env(tmp_path, REGISTRY_S3_BUCKET=None, AWS_S3_ENDPOINT_URL=None)
    script = "import django, json; django.setup(); from django.conf import settings; " \
             "print(json.dumps(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']))"
    result = run([sys.executable, "-c", script], env)
    assert result.returncode == 0, result.stderr
    directives = json.loads(result.stdout.strip().splitlines()[-1])
    assert "connect-src" not in directives and directives["default-src"] == ["'self'"]
