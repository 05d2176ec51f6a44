"""Errors of `cairn dev`: each message says what is wrong and how to fix it."""

from __future__ import annotations


class DevError(RuntimeError):
    """A `cairn dev` command cannot go on; the message is for the user."""
