"""Cairn's errors, in Dagster's error hierarchy: each Cairn error is also the `Dagster*Error` a Dagster
user catches for the same fault, so `except DagsterInvalidDefinitionError` ports unchanged. Each message
starts with Dagster's wording where Dagster has one and says, where it can, how to fix it."""

from __future__ import annotations


class DagsterError(Exception):
    """Base of Dagster's errors (and so of Cairn's)."""

    @property
    def is_user_code_error(self) -> bool:
        return False


class DagsterInvalidDefinitionError(DagsterError):
    """An op, graph, job or resource is defined wrongly."""


class DagsterInvalidInvocationError(DagsterError):
    """A definition is called (invoked) in a way it cannot be."""


class DagsterInvalidConfigError(DagsterError):
    """Run config does not match a config schema."""

    def __init__(self, preamble: str, errors: list[str] | None = None, config_value: object = None) -> None:
        super().__init__(preamble if not errors else preamble + "\n" + "\n".join(errors))
        self.errors = list(errors or [])
        self.config_value = config_value


class DagsterInvariantViolationError(DagsterError):
    """An API is used in a way it does not allow (e.g. a result read outside its `with` block)."""


class DagsterRunAlreadyExists(DagsterInvariantViolationError):
    """A run with the given run_id is already in the instance."""


class DagsterExecutionStepNotFoundError(DagsterError):
    """A step selection names a step the plan does not have."""

    def __init__(self, *args: object, step_keys: list[str] | None = None) -> None:
        super().__init__(*args)
        self.step_keys = list(step_keys or [])


class DagsterInvalidSubsetError(DagsterError):
    """An op or step selection cannot be built into a subset of the job."""


class DagsterRunNotFoundError(DagsterError):
    """No run with this id in the instance."""

    def __init__(self, *args: object, invalid_run_id: str | None = None) -> None:
        super().__init__(*args)
        self.invalid_run_id = invalid_run_id


class DagsterUnknownResourceError(DagsterError):
    """An op reads a resource its job does not provide."""


class DagsterUserCodeExecutionError(DagsterError):
    """User code (an op, a resource, a hook) raised; the original error is `__cause__`."""

    @property
    def is_user_code_error(self) -> bool:
        return True


class DagsterExecutionStepExecutionError(DagsterUserCodeExecutionError):
    """An op's compute raised (what `raise_on_error=True` raises)."""


class DagsterResourceFunctionError(DagsterUserCodeExecutionError):
    """A resource's init function raised."""


class DagsterTypeCheckDidNotPass(DagsterError):
    """A value did not match its output's or input's type (a step failure)."""

    def __init__(self, description: str | None = None, metadata: object = None, dagster_type: object = None) -> None:
        super().__init__(description)
        self.description = description
        self.metadata = dict(metadata or {})  # type: ignore[call-overload]
        self.dagster_type = dagster_type


class DagsterExecutionInterruptedError(BaseException):
    """The run was interrupted (Ctrl-C, SIGTERM) while a step ran."""


class CairnError(DagsterError):
    """Base of Cairn's own errors."""


class OutputContractError(CairnError, DagsterInvariantViolationError):
    """An op's compute yielded what its outputs do not allow (a DynamicOutput for a plain output, an Output for a
    dynamic one, a mapping key twice...): Dagster's invariant violation, a failure of the step."""


class DefinitionError(CairnError, DagsterInvalidDefinitionError):
    """An op or job is defined wrongly (an unconnected input, a duplicate output, a cycle...)."""


class ConfigError(CairnError, DagsterInvalidConfigError):
    """run_config does not match an op's config_schema."""

    def __init__(self, preamble: str, errors: list[str] | None = None, config_value: object = None) -> None:
        DagsterInvalidConfigError.__init__(self, preamble, errors, config_value)


class StepSelectionError(CairnError, DagsterExecutionStepNotFoundError):
    """A step selection names unknown steps or cannot be parsed."""


class ReexecutionError(CairnError):
    """A re-execution cannot be planned: wrong parent state, nothing to retry, missing ancestor or output."""


class RunNotFoundError(ReexecutionError, DagsterRunNotFoundError):
    """No run with this id in the instance."""


class MissingOutputsError(ReexecutionError):
    """Outputs that the re-execution would reuse are gone from storage."""

    def __init__(self, message: str, missing: list[tuple[str, str, str]]) -> None:
        super().__init__(message)
        self.missing = missing  # (step, output, key)
