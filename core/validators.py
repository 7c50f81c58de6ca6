"""Validators shared by every app's models and forms."""

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

# Bidirectional formatting characters: they can make a line display as something it is not
# ("Trojan Source", CVE-2021-42574), so a name or an address never holds them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@deconstructible
class NoControlCharactersValidator:
    """One line of text: no control characters (tabs, new lines, NUL...) and no bidi controls."""

    message = "Remove the hidden control characters from this text."
    code = "control_characters"

    def __call__(self, value: object) -> None:
        text = str(value)
        if any(ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc" for ch in text):
            raise ValidationError(self.message, code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharactersValidator)

    def __hash__(self) -> int:
        return hash(type(self))


validate_no_control_characters = NoControlCharactersValidator()
