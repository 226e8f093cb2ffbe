"""How names typed by people are cleaned and compared, so that two names that look the same on
a screen cannot both exist.

- `clean_label`: what is stored. Invisible characters are dropped (Unicode's
  Default_Ignorable_Code_Point: zero-width space and joiners, soft hyphen, the byte order
  mark, bidi controls such as a right-to-left override), compatibility forms are folded by
  NFKC (fullwidth letters, ligatures, no-break spaces), runs of whitespace become one space
  and the ends are trimmed.
- `lookalike_key`: what uniqueness is decided on. The confusable skeleton of Unicode TR39
  (Cyrillic "М" and Latin "M", "rn" and "m", "l" and "1" share one), taken before and after
  case folding so that case does not matter either, as a SHA-256: a fixed-size value for a
  unique index, whatever the name's script.

The skeleton comes from ICU's SpoofChecker (pyicu-wheels: PyICU with ICU bundled, so pip
installs it without a compiler or system ICU). Its confusables table grows with ICU releases:
stored keys keep refusing what they refused, and a name is compared with them by the table of
the ICU in use.
"""

from __future__ import annotations

import hashlib
import unicodedata

import icu

# str.translate table deleting every invisible character (about 4,000 code points).
_INVISIBLE = dict.fromkeys(ord(char) for char in icu.UnicodeSet(r"[[:Default_Ignorable_Code_Point:][:Bidi_Control:]]"))
_SPOOF_CHECKER = icu.SpoofChecker()  # thread-safe for getSkeleton once configured (ICU docs)


def _visible(text: str) -> str:
    return text if text.isascii() else text.translate(_INVISIBLE)


def clean_label(text: str) -> str:
    """`text` without invisible characters, NFKC-normalised, with inner whitespace collapsed to
    one space and the ends trimmed. Control characters are the caller's to refuse first."""
    # Dropping a joiner can bring a letter and its accent together: normalise after, and drop
    # again what NFKC may have produced.
    text = _visible(unicodedata.normalize("NFKC", _visible(text)))
    return " ".join(text.split())


def lookalike_key(name: str) -> str:
    """Equal for names a reader could mistake for each other (TR39 skeleton, case-insensitive)."""
    skeleton = _SPOOF_CHECKER.getSkeleton(0, _SPOOF_CHECKER.getSkeleton(0, clean_label(name)).casefold())
    return hashlib.sha256(skeleton.encode("utf-8", "surrogatepass")).hexdigest()
