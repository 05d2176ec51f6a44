"""Errors of `cairn dev`: each message says what is wrong and how to fix it."""

from __future__ import annotations

from cairn.errors import CairnError


class DevError(CairnError, RuntimeError):
    """A `cairn dev` command cannot go on; the message is for the user (`cairn` prints it, exit 2)."""
