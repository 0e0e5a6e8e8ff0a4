"""The API's JSON parser: DRF's, refusing text no database column can hold."""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """JSON bodies without NUL characters or unpaired surrogates, anywhere (keys included).

    PostgreSQL stores neither; refused here, they are a 400 for every endpoint
    instead of a database error in whichever field first meets them.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        try:
            text = json.dumps(data, ensure_ascii=False).encode("utf-8").decode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError("The body holds text that is not valid Unicode.") from exc
        if "\\u0000" in text or "\x00" in text:
            raise ParseError("The body holds a NUL character, which no field accepts.")
        return data
