"""The registry: models, services, API and workers (the dashboard is the `dashboard` app).

Nothing is imported here: `registry.gunicorn_conf` must run before any other module (it makes
the standard library cooperative for gevent). The Celery app lives in `registry.celery`, which
`celery -A registry` finds and Django loads with the tasks (registry/apps.py).
"""
