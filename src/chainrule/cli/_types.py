"""Argument types shared by the commands: a bad value is argparse's one-line error and exit 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(kind: type, minimum: float, what: str = "") -> Callable[[str], float]:
    """An argparse ``type=`` that parses ``kind`` (int, float) and refuses values below ``minimum``;
    ``what`` says what the number is, for the error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an' if kind is int else 'a'} {kind.__name__} >= {minimum}, "
                                             f"got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{what}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
