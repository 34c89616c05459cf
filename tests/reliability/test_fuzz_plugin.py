"""Fuzzing a live plugin process: malformed control frames and function requests.

Each channel is fuzzed once per module, in one testplug process (a module fixture); the
tests then check the replies it gave and that the same process still works afterwards.
Every reply is compared with what the pure protocol layer says it must be.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekuiper import _protocol
from ekuiper.errors import ProtocolError
from ekuiper.testing import FunctionHandle
from ekuiper.testing._host import _rep_request
from tests.reliability import strategies as s
from tests.reliability._counts import CASES
from tests.reliability.conftest import TESTPLUG, UncappedHost, launch

# A fuzzed start must never name a real testplug symbol, or the plugin would start it (and
# dial a socket nobody listens on, for 5 s). Real names are lower-case identifiers.
unknown_names = s.symbol_names.filter(lambda name: not re.fullmatch(r"[a-z0-9_]+", name))

# About 520 cases per channel, 20 of them 1-10 MB; the module runs in about 15 s.
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
         HealthCheck.large_base_example]
FUZZ = settings(max_examples=500, deadline=None, database=None, suppress_health_check=QUIET)
HUGE = settings(max_examples=20, deadline=None, database=None, suppress_health_check=QUIET)
MB = 1_000_000


@dataclass
class FuzzRun:
    """One plugin process after a fuzz run: what failed (if anything) and how many cases."""

    host: UncappedHost
    function: FunctionHandle | None = None
    failure: Exception | None = None
    cases: int = 0

    def run(self, *properties: Callable[[], None]) -> None:
        """Run the hypothesis properties in order; keep the first failure for the tests."""
        try:
            for prop in properties:
                prop()
        except Exception as exc:
            self.failure = exc

    def raise_failure(self) -> None:
        if self.failure is not None:
            print(f"--- plugin log (last 5000 chars) ---\n{self.host.log()[-5000:]}")
            raise self.failure


@pytest.fixture(scope="module")
def plugin_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], UncappedHost]]:
    """Makes testplug processes that live until the end of the module."""
    made: list[tuple[UncappedHost, str]] = []

    def make() -> UncappedHost:
        ipc = tempfile.mkdtemp(prefix="ekr-", dir="/tmp")
        out = tmp_path_factory.mktemp("testplug")
        made.append((launch(ipc, "testplug", TESTPLUG, {"TESTPLUG_OUT": str(out)}), ipc))
        return made[-1][0]

    yield make
    for host, ipc in made:
        host.close()
        shutil.rmtree(ipc, ignore_errors=True)


def assert_alive(host: UncappedHost) -> None:
    """Fail at once (not after a receive timeout) when the plugin process is gone."""
    assert host.process is not None
    code = host.process.poll()
    assert code is None, f"the plugin process exited with {code}"


# -- huge frames (1-10 MB) ------------------------------------------------------------

@st.composite
def huge_control_frames(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(min_value=1 * MB, max_value=10 * MB))
    shape = draw(st.sampled_from(["garbage", "unterminated", "config", "symbol", "array",
                                  "deep", "cmd"]))
    if shape == "garbage":
        return random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    if shape == "unterminated":
        return b'{"cmd":"start","arg":"' + b"a" * size
    if shape == "array":
        return b"[" + b"0," * (size // 2) + b"0]"
    if shape == "deep":
        return b"[" * (size // 2) + b"]" * (size // 2)
    if shape == "cmd":
        return s.encode_command("x" * size, {})
    name = draw(unknown_names)
    control: dict[str, Any] = {"symbolName": name, "pluginType": "sink",
                               "meta": {"ruleId": "r", "opId": "o", "instanceId": 0}}
    if shape == "symbol":
        control["symbolName"] = name * (size // len(name))
    else:
        control["config"] = {"blob": "b" * size}
    return s.encode_command("start", control)


@st.composite
def huge_func_requests(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(min_value=1 * MB, max_value=10 * MB))
    shape = draw(st.sampled_from(["garbage", "unterminated", "exec", "func", "deep",
                                  "meta"]))
    if shape == "garbage":
        return random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    if shape == "unterminated":
        return b'{"func":"Exec","arg":["' + b"a" * size
    if shape == "exec":  # valid: one 1-10 MB argument, upper-cased by the function
        value = "\u00e9a" * (size // 3)  # 3 bytes of UTF-8 per pair
        return json.dumps({"func": "Exec", "arg": [value, "{}"]}, ensure_ascii=False).encode()
    if shape == "func":
        return json.dumps({"func": "F" * size, "arg": None}).encode()
    if shape == "deep":
        return b'{"func":"Exec","arg":' + b"[" * (size // 2) + b"]" * (size // 2) + b"}"
    return json.dumps({"func": "Exec", "arg": [1, "{" * size]}).encode()


# -- the control channel --------------------------------------------------------------

control_frames = st.one_of(
    st.binary(min_size=0, max_size=200),
    s.json_values.map(lambda value: json.dumps(value).encode()),
    s.wrong_commands(unknown_names),
    s.truncated(s.valid_commands(unknown_names), min_size=1),
    s.valid_commands(unknown_names),
)


def check_control_reply(host: UncappedHost, payload: bytes) -> None:
    """Send one frame; its reply must be exactly what the protocol layer says."""
    CASES["control"] += 1
    assert_alive(host)
    reply = host.raw_command(payload)
    assert reply == b"ok" or (reply and reply[:1] not in (b"h", b"H")), reply[:200]
    try:
        command = _protocol.parse_command(payload)
    except ProtocolError as exc:
        assert reply == _protocol.control_error_reply(str(exc))
        return
    if command.cmd == "stop":  # stopping what does not run is fine with eKuiper
        assert reply == b"ok"
    else:
        name = f"{command.control.symbol_name!r:.200}"  # long names are cut in the reply
        expected = f"plugin 'testplug' has no {command.control.noun} named {name} "
        assert reply.startswith(expected.encode("utf-8", "replace")), reply[:200]


@pytest.fixture(scope="module")
def control_fuzzed(plugin_host: Callable[[], UncappedHost]) -> FuzzRun:
    """testplug after a few hundred malformed control frames, 20 of them 1-10 MB."""
    run = FuzzRun(plugin_host())
    run.host.control.recv_timeout = 10_000

    @FUZZ
    @given(control_frames)
    def small(payload: bytes) -> None:
        run.cases += 1
        check_control_reply(run.host, payload)

    @HUGE
    @given(huge_control_frames())
    def huge(payload: bytes) -> None:
        run.cases += 1
        check_control_reply(run.host, payload)

    run.run(small, huge)
    return run


def test_every_fuzzed_control_frame_gets_its_error_reply(control_fuzzed: FuzzRun) -> None:
    """Every malformed control frame is answered with its exact, non-h error text."""
    control_fuzzed.raise_failure()
    print(f"control channel: {control_fuzzed.cases} fuzz cases")
    assert control_fuzzed.cases >= 500
    assert_alive(control_fuzzed.host)


def test_counter_runs_after_control_fuzzing(control_fuzzed: FuzzRun) -> None:
    """After the fuzz run, the same process starts counter and delivers its rows."""
    host = control_fuzzed.host
    assert_alive(host)
    reply, source = host.start_source("counter", rule="after", datasource="t1")
    assert reply == b"ok"
    assert source.rows(2) == [
        {"message": {"n": 0, "datasource": "t1"}, "meta": {"seq": 0}},
        {"message": {"n": 1, "datasource": "t1"}, "meta": {"seq": 1}},
    ]
    assert host.stop("source", "counter", rule="after") == b"ok"


def test_function_answers_after_control_fuzzing(control_fuzzed: FuzzRun) -> None:
    """After the fuzz run, the same process starts upper and answers a call."""
    assert_alive(control_fuzzed.host)
    reply, fn = control_fuzzed.host.start_function("upper")
    assert reply == b"ok"
    assert fn.exec("still here") == {"state": True, "result": "STILL HERE"}


# -- the function channel -------------------------------------------------------------

func_requests = st.one_of(
    st.binary(min_size=1, max_size=200),
    s.json_values.map(lambda value: json.dumps(value).encode()),
    s.wrong_func_requests(),
    s.truncated(s.valid_func_requests(), min_size=1),
    s.valid_func_requests(),
)


def expected_upper_reply(payload: bytes) -> dict[str, Any]:
    """What testplug's upper must answer to ``payload``, per the protocol layer."""
    try:
        request = _protocol.parse_func_request(payload)
    except ProtocolError as exc:
        return {"state": False, "result": str(exc)}
    if request.func == "IsAggregate":
        return {"state": True, "result": False}
    if request.func == "Validate":
        return {"state": True, "result": ""}
    if not request.args:  # upper reads args[0]
        return {"state": False, "result": "IndexError: list index out of range"}
    return dict(json.loads(_protocol.encode_func_reply(True, str(request.args[0]).upper())))


def check_function_reply(host: UncappedHost, fn: FunctionHandle, payload: bytes) -> None:
    """Send one request; the reply must be JSON, and exactly the expected one."""
    CASES["function"] += 1
    assert_alive(host)
    reply = json.loads(_rep_request(fn.sock, payload, skip_handshakes=True))
    assert set(reply) == {"state", "result"}
    assert isinstance(reply["state"], bool)
    if reply["state"] is False:
        assert isinstance(reply["result"], str) and reply["result"]
    assert reply == expected_upper_reply(payload)


@pytest.fixture(scope="module")
def function_fuzzed(plugin_host: Callable[[], UncappedHost]) -> FuzzRun:
    """testplug's upper after a few hundred malformed requests, 20 of them 1-10 MB."""
    host = plugin_host()
    host.control.recv_timeout = 10_000
    reply, fn = host.start_function("upper")
    assert reply == b"ok"
    run = FuzzRun(host, fn)

    @FUZZ
    @given(func_requests)
    def small(payload: bytes) -> None:
        run.cases += 1
        check_function_reply(host, fn, payload)

    @HUGE
    @given(huge_func_requests())
    def huge(payload: bytes) -> None:
        run.cases += 1
        check_function_reply(host, fn, payload)

    run.run(small, huge)
    return run


def test_every_fuzzed_request_gets_its_function_reply(function_fuzzed: FuzzRun) -> None:
    """Every malformed request is answered with state false and its exact error text."""
    function_fuzzed.raise_failure()
    print(f"function channel: {function_fuzzed.cases} fuzz cases")
    assert function_fuzzed.cases >= 500


def test_upper_answers_after_function_fuzzing(function_fuzzed: FuzzRun) -> None:
    """After the fuzz run, upper still answers a well-formed call on the same channel."""
    assert_alive(function_fuzzed.host)
    assert function_fuzzed.function is not None
    assert function_fuzzed.function.exec("abc") == {"state": True, "result": "ABC"}


def test_control_channel_serves_after_function_fuzzing(function_fuzzed: FuzzRun) -> None:
    """After the function fuzz run, the same process still starts a source."""
    assert_alive(function_fuzzed.host)
    reply, source = function_fuzzed.host.start_source("counter", rule="after2",
                                                      datasource="t2")
    assert reply == b"ok"
    assert source.rows(1) == [{"message": {"n": 0, "datasource": "t2"}, "meta": {"seq": 0}}]



# -- found by fuzzing -----------------------------------------------------------------

def test_empty_control_frame_gets_an_error_reply(testplug: UncappedHost) -> None:
    """An empty control frame is answered as not valid JSON, like any other garbage."""
    testplug.control.recv_timeout = 3000
    assert testplug.raw_command(b"") == (
        b"control command is not valid JSON (Expecting value: line 1 column 1 (char 0)): ''")


def test_empty_function_request_gets_an_error_reply(testplug: UncappedHost) -> None:
    """An empty function request is answered with state false, like any other garbage."""
    reply, fn = testplug.start_function("upper")
    assert reply == b"ok"
    fn.sock.recv_timeout = 3000
    assert json.loads(_rep_request(fn.sock, b"", skip_handshakes=True)) == {
        "state": False,
        "result": "function request is not valid JSON (Expecting value: line 1 column 1 "
                  "(char 0)): ''",
    }
