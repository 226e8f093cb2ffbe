import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
application = get_wsgi_application()

# Import the URL configuration (and with it every view, serializer and form) now: under
# gunicorn's preload_app this happens once in the master, so a new worker needs none of it.
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns
