"""`cairn operator` takes the operator's own flags and maps them onto `python -m cairn_operator`."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cairn import cli

PY = "/py"
BASE = [PY, "-m", "cairn_operator"]


def mapped(*argv: str) -> list[str]:
    return cli.operator_argv(cli.build_parser().parse_args(["operator", *argv]), python=PY)


@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        ((), []),
        (("--liveness", "http://0.0.0.0:9/healthz"), ["--liveness", "http://0.0.0.0:9/healthz"]),
        (("--liveness=",), ["--liveness", ""]),
        (("--namespace", "a", "-n", "b"), ["--namespace", "a", "--namespace", "b"]),
        (("--all-namespaces",), ["--all-namespaces"]),
        (("-A", "-v"), ["--all-namespaces", "--verbose"]),
        (("--verbose",), ["--verbose"]),
        (
            ("--verbose", "--namespace", "x", "--liveness", "http://h/l"),
            ["--liveness", "http://h/l", "--namespace", "x", "--verbose"],
        ),
        (("--", "--liveness", "http://h/l", "-n", "x"), ["--liveness", "http://h/l", "-n", "x"]),  # as before
        (("-v", "--", "--namespace", "x"), ["--verbose", "--namespace", "x"]),
    ],
)
def test_flags_map_onto_the_operator_argv(argv: tuple[str, ...], flags: list[str]) -> None:
    assert mapped(*argv) == BASE + flags


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--namespace", "a", "--all-namespaces"), "not allowed with argument"),
        (("--bogus",), "unrecognized arguments: --bogus"),
        (("--liveness",), "expected one argument"),
    ],
)
def test_bad_flags_are_refused_by_the_cli(argv: tuple[str, ...], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["operator", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "namespaces", "liveness", "verbose"),
    [
        ((), [], "http://127.0.0.1:8080/healthz", False),
        (("-n", "a", "--namespace", "b", "-v"), ["a", "b"], "http://127.0.0.1:8080/healthz", True),
        (("--all-namespaces", "--liveness", "http://0.0.0.0:1/h"), [], "http://0.0.0.0:1/h", False),
        (("--liveness", ""), [], "", False),
    ],
)
def test_the_operator_program_accepts_what_the_cli_passes(
    argv: tuple[str, ...], namespaces: list[str], liveness: str, verbose: bool
) -> None:
    from cairn_operator.__main__ import build_parser

    args = build_parser().parse_args(mapped(*argv)[3:])
    assert (args.namespace, args.liveness, args.verbose) == (namespaces, liveness, verbose)


def test_the_operator_program_refuses_namespace_with_all_namespaces(capsys: Any) -> None:
    from cairn_operator.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--all-namespaces", "-n", "a"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_documents_the_flags(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["operator", "--help"])
    out = capsys.readouterr().out
    for flag in ("--liveness URL", "--namespace NS", "--all-namespaces", "--verbose", "python -m cairn_operator"):
        assert flag in out, flag


def test_operator_execs_python_m_cairn_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr("os.execv", lambda path, argv: calls.append((path, list(argv))))
    assert cli.main(["operator", "-n", "team", "--liveness", "http://127.0.0.1:1/h"]) == 0
    argv = [sys.executable, "-m", "cairn_operator", "--liveness", "http://127.0.0.1:1/h", "--namespace", "team"]
    assert calls == [(sys.executable, argv)]
