"""gunicorn settings for the web process: `gunicorn -c python:registry.gunicorn_conf registry.wsgi`.

Every value comes from the environment, so docker-compose and a bare host use the same file.
Threads rather than more processes: a request spends its time streaming a file to or from
storage, waiting on the network, not on the CPU.
"""

import os

from registry.settings import LOGGING, REGISTRY_LOG_FORMAT

bind = os.environ.get("REGISTRY_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("REGISTRY_WEB_THREADS", "8"))
# Uploads and downloads of gigabyte files stream for minutes; gthread only times out a
# worker whose main loop is stuck, not a thread that is still moving bytes.
timeout = int(os.environ.get("REGISTRY_WEB_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# The application is imported once, in the master, before the workers fork: a recycled or
# crashed worker is replaced by a fork that answers at once, instead of a process that spends
# seconds importing Django, the API and every view while its peer may be restarting too.
preload_app = True
# Recycle processes now and then so a slow leak never grows without bound (0: never); the
# jitter spreads the workers' turns apart.
max_requests = int(os.environ.get("REGISTRY_WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 4
# The proxy in front (or docker's network) is the only client; it sets X-Forwarded-*.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = "-"
errorlog = "-"
logconfig_dict = {
    **LOGGING,
    "loggers": {
        **LOGGING["loggers"],
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
if REGISTRY_LOG_FORMAT == "json":
    access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
