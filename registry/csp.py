"""django-csp's middleware, with the site's policy built once instead of for every response.

A response carries the settings' policy unless its view changed it (django-csp's decorators
set attributes on the response) or its page asked for a nonce. Those go through django-csp
unchanged. Every other response (every API answer) gets the same two headers, which
django-csp would build again from the settings each time: they are built once, and again
when the settings change (tests).
"""

from __future__ import annotations

from csp import middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed

# What django-csp's decorators set on a response (csp_update, csp_replace, csp_exempt, csp_override).
_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_exempt",
                 "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro", "_csp_exempt_ro")
_built: dict[str, tuple[str, tuple[str, ...]]] = {}  # header: (policy, excluded path prefixes)


def _plain_policies() -> dict[str, tuple[str, tuple[str, ...]]]:
    if not _built:
        for header, setting, report_only in ((HEADER, "CONTENT_SECURITY_POLICY", False),
                                             (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True)):
            policy = build_policy(report_only=report_only)
            prefixes = tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ())
            _built[header] = (policy, prefixes)
    return _built


def _settings_changed(setting, **kwargs):
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _built.clear()


setting_changed.connect(_settings_changed)


class CSPMiddleware(middleware.CSPMiddleware):
    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(hasattr(response, name) for name in _PER_RESPONSE) \
                or (settings.DEBUG and response.status_code in (500, 404)):
            return super().process_response(request, response)
        # As django-csp does for such a response, with the policies built once.
        for header, (policy, prefixes) in _plain_policies().items():
            if policy and header not in response and not request.path_info.startswith(prefixes):
                response[header] = policy
        request.csp_nonce = middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
