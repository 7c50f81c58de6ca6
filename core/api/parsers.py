"""The API's one parser: JSON."""

from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class ClinicJSONParser(JSONParser):
    """JSON, where nesting deep enough to exhaust the parser's recursion is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
