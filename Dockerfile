# The registry's one image: the web process, the Celery worker and beat all run from it
# (docker-compose.yml picks the command). Build: docker build -t model-registry .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REGISTRY_DATA_DIR=/app/var \
    REGISTRY_STATIC_ROOT=/app/staticfiles

# A user of its own: nothing in the container runs as root.
RUN groupadd --system --gid 10001 registry \
    && useradd --system --uid 10001 --gid registry --home-dir /home/registry --create-home registry

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN mkdir -p registry dashboard && touch registry/__init__.py dashboard/__init__.py \
    && pip install . && pip uninstall -y model-registry && rm -rf registry dashboard build *.egg-info

COPY manage.py ./
COPY registry ./registry
COPY dashboard ./dashboard
COPY templates ./templates
COPY static ./static
# Editable: the code stays in /app, beside templates/ and static/ that the settings look for.
RUN pip install --no-deps -e . \
    # Hashed, pre-compressed static files for WhiteNoise, made once here rather than at start.
    && DEBUG=false SECRET_KEY=build-only-collectstatic-key python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown registry:registry /app/var

USER registry
EXPOSE 8000
VOLUME ["/app/var"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"]
