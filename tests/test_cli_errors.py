"""Every command's user errors as a user meets them: the real `lbipam` in a subprocess, exit code
2 and one line on stderr (`lbipam COMMAND: what is wrong`), never a traceback.

A bad or missing kubeconfig, a program that is not there, a port in use, a flag value the command
cannot use. `lbipam.usererror.run_command` does this for every subcommand; the unit tests below
check how it looks through task groups, and that a bug keeps its traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbipam.demo.bird import find_program
from lbipam.usererror import UserError, run_command, user_errors

pytestmark = pytest.mark.e2e


def lbipam(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """Run `lbipam ARGV` as a user would; its exit code and stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "lbipam", *argv],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env or {**os.environ, "KUBECONFIG": ""},
        cwd=cwd,
    )
    return result.returncode, result.stderr


def assert_one_line(code: int, stderr: str, command: str, *fragments: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"lbipam {command}: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 with a listener on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def garbage_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters: [\n")
    return path


# ---- kubeconfig ---------------------------------------------------------------------------------
KUBE_COMMANDS = [
    pytest.param(["controller"], id="controller"),
    pytest.param(["speaker", "--node", "node-a"], id="speaker"),
    pytest.param(["status"], id="status"),
    pytest.param(["check"], id="check"),
]


@pytest.mark.parametrize("argv", KUBE_COMMANDS)
def test_a_missing_kubeconfig(argv: list[str], tmp_path: Path) -> None:
    code, err = lbipam(*argv, "--kubeconfig", str(tmp_path / "nope"))
    assert_one_line(code, err, argv[0], f"kubeconfig {tmp_path / 'nope'}: no such file")


@pytest.mark.parametrize("argv", KUBE_COMMANDS[:3])  # `check` connects as `status` does
def test_a_kubeconfig_that_is_not_yaml(argv: list[str], garbage_kubeconfig: Path) -> None:
    code, err = lbipam(*argv, "--kubeconfig", str(garbage_kubeconfig))
    assert_one_line(code, err, argv[0], f"kubeconfig {garbage_kubeconfig}: ")


@pytest.mark.parametrize("argv", KUBE_COMMANDS[:3])
def test_no_kubeconfig_anywhere(argv: list[str], tmp_path: Path) -> None:
    """No flag, no $KUBECONFIG, not in a pod, no ~/.kube/config."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path)}
    code, err = lbipam(*argv, env=env)
    assert_one_line(code, err, argv[0], "no --kubeconfig, no KUBECONFIG, not in a cluster")


# ---- ports in use -------------------------------------------------------------------------------
def test_apiserver_port_in_use(taken_port: int) -> None:
    code, err = lbipam("apiserver", "--port", str(taken_port))
    assert_one_line(code, err, "apiserver", f"--port {taken_port} on 127.0.0.1: address already in use")


def test_demo_port_in_use(taken_port: int) -> None:
    code, err = lbipam("demo", "--port", str(taken_port))
    assert_one_line(code, err, "demo", f"--port {taken_port}: address already in use")


@pytest.mark.parametrize("command", ["controller", "speaker"])
async def test_metrics_port_in_use(
    command: str, taken_port: int, kubeconfig: Path, lbipam_crds: list[str]
) -> None:
    """The default address (`::`, both families) collides with a listener on 127.0.0.1 too."""
    argv = [command, "--kubeconfig", str(kubeconfig), "--metrics-port", str(taken_port)]
    argv += ["--node", "node-a"] if command == "speaker" else ["--no-leader-elect"]
    code, err = await asyncio.to_thread(lbipam, *argv)
    lines = [line for line in err.splitlines() if f"lbipam {command}: " in line]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert lines == [f"lbipam {command}: cannot serve metrics on [::]:{taken_port}: Address already in use"]


# ---- programs that are not there ----------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["speaker", "--node", "node-a"], id="speaker"),
        pytest.param(["demo"], id="demo"),
    ],
)
def test_a_missing_exabgp(argv: list[str], tmp_path: Path) -> None:
    code, err = lbipam(*argv, "--exabgp", str(tmp_path / "exabgp"))
    assert_one_line(code, err, argv[0], f"--exabgp {tmp_path / 'exabgp'}: no such program")


def test_find_program_says_where_it_looked() -> None:
    with pytest.raises(UserError, match="neither on PATH nor in /usr/sbin or /usr/local/sbin"):
        find_program("lbipam-test-no-such-program")


# ---- flag values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(
            ["demo", "--peer", "192.0.2.1:bgp"], "--peer 192.0.2.1:bgp: give ADDRESS", id="demo-peer"
        ),
        pytest.param(["demo", "--with-bird", "--peer", "192.0.2.1"], "not both", id="demo-bird-and-peer"),
        pytest.param(["demo", "--log-level", "loud"], "--log-level loud", id="demo-log-level"),
        pytest.param(["apiserver", "--log-level", "loud"], "--log-level loud", id="apiserver-log-level"),
        pytest.param(
            ["speaker", "--node", "a", "--log-level", "loud"], "--log-level: unknown", id="speaker-level"
        ),
        pytest.param(["controller", "--log-level", "loud"], "--log-level: unknown", id="controller-level"),
    ],
)
def test_a_flag_value_it_cannot_use(argv: list[str], fragment: str) -> None:
    code, err = lbipam(*argv)
    assert_one_line(code, err, argv[0], fragment)


def test_demo_database_that_cannot_be_opened(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database " * 200)
    code, err = lbipam("demo", "--db", str(not_a_db))
    assert_one_line(code, err, "demo", f"--db {not_a_db}: file is not a database")
    code, err = lbipam("demo", "--db", str(tmp_path / "missing-dir" / "demo.db"))
    assert_one_line(code, err, "demo", "unable to open database file")


def test_demo_without_examples(tmp_path: Path) -> None:
    code, err = lbipam("demo", "--examples", str(tmp_path))
    assert_one_line(code, err, "demo", f"no example objects (*.yaml) in {tmp_path}")


# ---- the wrapper itself -------------------------------------------------------------------------
def test_user_errors_are_found_through_task_groups() -> None:
    error = UserError("port in use")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [error])])
    assert user_errors(nested) == [error]
    with_cancelled = BaseExceptionGroup("g", [asyncio.CancelledError(), error])
    assert user_errors(with_cancelled) == [error]


def test_a_bug_beside_a_user_error_keeps_its_traceback() -> None:
    mixed = ExceptionGroup("g", [UserError("port in use"), KeyError("bug")])
    assert user_errors(mixed) is None

    def run(_: None) -> int:
        raise mixed

    with pytest.raises(ExceptionGroup):
        run_command("controller", run, None)


def test_a_user_error_becomes_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def run(_: None) -> int:
        raise ExceptionGroup("g", [UserError("kubeconfig k: while parsing\n  in 'k', line 2")])

    assert run_command("status", run, None) == 2
    assert capsys.readouterr().err == "lbipam status: kubeconfig k: while parsing in 'k', line 2\n"
