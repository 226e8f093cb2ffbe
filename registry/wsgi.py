import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
application = get_wsgi_application()

# What a worker would otherwise do on its first request, done now: under gunicorn's preload_app
# it happens once in the master, so a new worker (one every REGISTRY_WEB_MAX_REQUESTS) needs
# none of it (measured in process: a fresh worker's first API request cost 85 ms of CPU, 19 ms
# with this, the next ones 2.5 ms).
import redis  # noqa: E402, F401 - the shared cache's client (the throttles), imported lazily by Django
from django.urls import get_resolver  # noqa: E402

resolver = get_resolver()
resolver.url_patterns  # the URL configuration, and with it every view, serializer and form
resolver.reverse_dict  # the names reverse() looks up (the API's links), built on first use
