"""Cairn's errors. Each message says what is wrong and, where it can, how to fix it."""

from __future__ import annotations


class CairnError(Exception):
    """Base of Cairn's errors."""


class DefinitionError(CairnError):
    """An op or job is defined wrongly (an unconnected input, a duplicate output, a cycle...)."""


class ConfigError(CairnError):
    """run_config does not match an op's config_schema."""


class StepSelectionError(CairnError):
    """A step selection names unknown steps or cannot be parsed."""


class ReexecutionError(CairnError):
    """A re-execution cannot be planned: wrong parent state, nothing to retry, missing ancestor or output."""


class RunNotFoundError(ReexecutionError):
    """No run with this id in the instance."""


class MissingOutputsError(ReexecutionError):
    """Outputs that the re-execution would reuse are gone from storage."""

    def __init__(self, message: str, missing: list[tuple[str, str, str]]) -> None:
        super().__init__(message)
        self.missing = missing  # (step, output, key)
