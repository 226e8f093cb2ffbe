"""DRF's content negotiation, without parsing the Accept headers clients send nearly always.

Every API request negotiates its renderer. DRF parses the Accept header into media types and
ranks them even when it is absent, `*/*` or `application/json`: what the client, curl,
requests and httpx send. Those three are answered at once, as DRF answers them (the first
renderer; the JSON renderer); any other header, and a ?format=, goes through DRF's own
negotiation (406 for a type no renderer makes).
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT", "").strip()
        if format_suffix is None and self.settings.URL_FORMAT_OVERRIDE not in request.query_params and renderers:
            first = renderers[0]
            if accept in ("", "*/*") or (accept == "application/json" and first.media_type == accept):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
