"""The operator's settings, parsed once from its environment and flags: defaults, values, and a clear
error naming the setting and what it takes."""

from __future__ import annotations

import pytest

from cairn_operator.settings import Settings, SettingsError, from_environment, parse_address


@pytest.mark.parametrize(
    ("env", "metrics", "expected"),
    [
        ({}, "", Settings()),
        (
            {"CAIRN_MAX_PODS": "7", "CAIRN_WORKERS": "4", "CAIRN_STEP_SERVICE_ACCOUNT": "runner"},
            "",
            Settings(max_pods=7, workers=4, step_account="runner"),
        ),
        ({"CAIRN_WAIT_RESYNC": "0.5", "CAIRN_RX_RESYNC": "2"}, "", Settings(wait_resync=0.5, rx_resync=2.0)),
        (
            {"CAIRN_FAULT": "exit-after:status-write, exit-before:pod-delete", "CAIRN_FAULT_NAMESPACE": "t"},
            "127.0.0.1:0",
            Settings(
                faults=frozenset({"exit-after:status-write", "exit-before:pod-delete"}),
                fault_namespace="t",
                metrics=("127.0.0.1", 0),
            ),
        ),
        ({"CAIRN_MAX_PODS": ""}, ":8081", Settings(metrics=("0.0.0.0", 8081))),
    ],
)
def test_settings_from_the_environment(env: dict[str, str], metrics: str, expected: Settings) -> None:
    assert from_environment(env, metrics) == expected


@pytest.mark.parametrize(
    ("env", "metrics", "message"),
    [
        ({"CAIRN_MAX_PODS": "many"}, "", "CAIRN_MAX_PODS='many' is not a number: set it to a number >= 1"),
        ({"CAIRN_WORKERS": "0"}, "", "CAIRN_WORKERS='0' is below 1: set it to a number >= 1"),
        ({}, "8081", "--metrics '8081': expected HOST:PORT, e.g. 0.0.0.0:8081 (or '' for none)"),
        ({}, "host:99999", "--metrics 'host:99999': expected HOST:PORT"),
    ],
)
def test_a_bad_setting_says_which_and_what_it_takes(env: dict[str, str], metrics: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        from_environment(env, metrics)
    assert str(err.value).startswith(message)


def test_no_metrics_address_turns_them_off() -> None:
    assert parse_address("") is None
