"""The two ways a comparison cannot be made (both exit 2): bad input, or files that measured different things."""

from __future__ import annotations


class CompareInputError(ValueError):
    """A results file or a gate cannot be read (exit 2)."""


class NotComparable(ValueError):
    """The two files measured different things (exit 2); the message names what differs."""
