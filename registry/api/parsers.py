"""The API's JSON parser: DRF's, with a nesting limit checked before parsing and no text that
the database would refuse (see registry/jsoninput.py)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from registry import jsoninput
from registry.errors import InvalidInput


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # DRF hands JSON parsers the body already read (and held to DATA_UPLOAD_MAX_MEMORY_SIZE).
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}: {exc.reason}.") from None
        limit = settings.REGISTRY_MAX_JSON_DEPTH
        try:
            data = jsoninput.loads(text, max_depth=limit)
        except jsoninput.NestedTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc} (REGISTRY_MAX_JSON_DEPTH)") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if jsoninput.may_be_unstorable(text):
            found = jsoninput.unstorable(data)
            if found:
                where, problem = found
                raise InvalidInput(f"'{where}' {problem}." if where else f"The body {problem}.", field=where or None)
        return data
