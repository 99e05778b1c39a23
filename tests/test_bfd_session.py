"""The BFD session rules of RFC 5880 section 6.8, with plain numbers for time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgp.bfd.packet import ControlPacket, Diag, State, decode, encode
from bgp.bfd.session import SLOW_TX, Session, Timers

FAST = Timers(desired_min_tx=300_000, required_min_rx=300_000, detect_mult=3)


def session(timers: Timers = FAST, jitter: float = 0.0) -> Session:
    return Session(timers, local_discr=0xA, jitter=lambda: jitter)


def remote(state: State, **changes: object) -> ControlPacket:
    fields: dict[str, object] = {
        "my_discriminator": 0xB,
        "your_discriminator": 0xA,
        "desired_min_tx": 300_000,
        "required_min_rx": 300_000,
    }
    fields.update(changes)
    return ControlPacket(state, **fields)  # type: ignore[arg-type]


def up(timers: Timers = FAST) -> Session:
    s = session(timers)
    s.receive(remote(State.INIT), now=0.0)
    assert s.state == State.UP
    return s


# RFC 5880 6.8.6, the state table: (our state, received state) -> (our new state, diag)
TRANSITIONS = [
    pytest.param(State.DOWN, State.DOWN, State.INIT, Diag.NONE, id="down+down=init"),
    pytest.param(State.DOWN, State.INIT, State.UP, Diag.NONE, id="down+init=up"),
    pytest.param(State.DOWN, State.UP, State.DOWN, Diag.NONE, id="down+up=down"),
    pytest.param(State.DOWN, State.ADMIN_DOWN, State.DOWN, Diag.NONE, id="down+admindown=down"),
    pytest.param(State.INIT, State.INIT, State.UP, Diag.NONE, id="init+init=up"),
    pytest.param(State.INIT, State.UP, State.UP, Diag.NONE, id="init+up=up"),
    pytest.param(State.INIT, State.DOWN, State.INIT, Diag.NONE, id="init+down=init"),
    pytest.param(State.INIT, State.ADMIN_DOWN, State.DOWN, Diag.NEIGHBOR_DOWN, id="init+admindown=down"),
    pytest.param(State.UP, State.UP, State.UP, Diag.NONE, id="up+up=up"),
    pytest.param(State.UP, State.INIT, State.UP, Diag.NONE, id="up+init=up"),
    pytest.param(State.UP, State.DOWN, State.DOWN, Diag.NEIGHBOR_DOWN, id="up+down=down-neighbor"),
    pytest.param(State.UP, State.ADMIN_DOWN, State.DOWN, Diag.NEIGHBOR_DOWN, id="up+admindown=down"),
    pytest.param(State.ADMIN_DOWN, State.UP, State.ADMIN_DOWN, Diag.ADMIN_DOWN, id="admindown-ignores"),
]


def in_state(state: State) -> Session:
    s = session()
    if state == State.INIT:
        s.receive(remote(State.DOWN, your_discriminator=0), now=0.0)
    elif state == State.UP:
        s = up()
    elif state == State.ADMIN_DOWN:
        s.admin_down()
    assert s.state == state
    return s


@pytest.mark.parametrize(("ours", "received", "after", "diag"), TRANSITIONS)
def test_state_table(ours: State, received: State, after: State, diag: Diag) -> None:
    s = in_state(ours)
    s.receive(remote(received, your_discriminator=0xA if received in (State.INIT, State.UP) else 0), now=1.0)
    assert (s.state, s.diag) == (after, diag)


def test_the_remote_discriminator_is_learnt_and_echoed() -> None:
    s = session()
    s.receive(remote(State.DOWN, my_discriminator=0x77, your_discriminator=0), now=0.0)
    assert s.packet().your_discriminator == 0x77
    assert s.packet().my_discriminator == 0xA


def test_transmission_is_slow_until_up_then_the_configured_interval_by_a_poll() -> None:
    s = session()
    assert s.packet().desired_min_tx == SLOW_TX  # 6.8.3: not less than one second while not Up
    assert s.tx_interval() == SLOW_TX
    s.receive(remote(State.INIT), now=0.0)
    assert s.state == State.UP
    assert s.packet().desired_min_tx == 300_000
    assert s.packet().poll  # a changed DesiredMinTxInterval is carried by a poll sequence
    assert s.tx_interval() == 300_000  # faster: used at once
    s.receive(remote(State.UP, final=True), now=0.1)
    assert not s.packet().poll


def test_the_interval_is_the_larger_of_ours_and_the_remote_minimum_rx() -> None:
    s = up()
    s.receive(remote(State.UP, required_min_rx=500_000), now=0.1)
    assert s.tx_interval() == 500_000


def test_a_remote_that_wants_no_packets_gets_none() -> None:
    s = up()
    s.receive(remote(State.UP, required_min_rx=0), now=0.1)
    assert s.tx_interval() is None
    assert s.next_tx_delay() is None


@pytest.mark.parametrize(
    ("mult", "jitter", "fraction"),
    [
        pytest.param(3, 0.0, 1.00, id="no-reduction"),
        pytest.param(3, 0.999999, 0.75, id="largest-reduction-25pct"),
        pytest.param(1, 0.0, 0.90, id="mult1-at-most-90pct"),
        pytest.param(1, 0.999999, 0.75, id="mult1-at-least-75pct"),
    ],
)
def test_jitter_keeps_the_interval_between_75_and_100_percent(
    mult: int, jitter: float, fraction: float
) -> None:
    s = session(Timers(300_000, 300_000, mult), jitter)
    s.receive(remote(State.INIT), now=0.0)
    assert s.next_tx_delay() == pytest.approx(0.3 * fraction, rel=1e-4)


def test_detection_time_is_the_remote_multiplier_times_the_agreed_interval() -> None:
    s = session()
    s.receive(remote(State.INIT, detect_mult=5, desired_min_tx=400_000), now=10.0)
    assert s.detection_time() == pytest.approx(5 * 0.4)  # remote TX slower than our RX
    s.receive(remote(State.UP, detect_mult=2, desired_min_tx=100_000), now=10.1)
    assert s.detection_time() == pytest.approx(2 * 0.3)  # our RX slower than the remote TX
    assert s.deadline() == pytest.approx(10.1 + 0.6)


def test_silence_for_the_detection_time_takes_the_session_down() -> None:
    s = up()
    assert not s.expire(0.89)
    assert s.state == State.UP
    assert s.expire(0.9)
    assert (s.state, s.diag) == (State.DOWN, Diag.DETECTION_EXPIRED)
    assert s.remote_discr == 0  # 6.8.1: forgotten after a detection time without packets
    assert s.packet().desired_min_tx == SLOW_TX


def test_a_poll_is_answered_with_final_and_without_poll() -> None:
    s = up()
    assert s.receive(remote(State.UP, poll=True), now=0.1) is True
    answer = s.packet(final=True)
    assert answer.final
    assert not answer.poll
    assert s.receive(remote(State.UP), now=0.2) is False


def test_a_slower_tx_waits_for_the_final_bit() -> None:
    s = up()
    s.receive(remote(State.UP, final=True), now=0.1)  # the poll of going Up is over
    s.reconfigure(Timers(desired_min_tx=600_000, required_min_rx=300_000, detect_mult=3))
    assert s.packet().poll
    assert s.packet().desired_min_tx == 600_000
    assert s.tx_interval() == 300_000  # 6.8.3: unchanged until the poll sequence completes
    s.receive(remote(State.UP, final=True), now=0.2)
    assert s.tx_interval() == 600_000
    assert not s.packet().poll


def test_a_faster_rx_counts_for_detection_only_after_the_final_bit() -> None:
    s = up(Timers(300_000, 500_000, 3))
    s.receive(remote(State.UP, final=True, desired_min_tx=100_000), now=0.1)
    s.reconfigure(Timers(300_000, 100_000, 3))
    assert s.detection_time() == pytest.approx(3 * 0.5)
    s.receive(remote(State.UP, final=True, desired_min_tx=100_000), now=0.2)
    assert s.detection_time() == pytest.approx(3 * 0.1)


def test_changes_while_down_apply_at_once_without_a_poll() -> None:
    s = session()
    s.reconfigure(Timers(200_000, 200_000, 5))
    assert not s.packet().poll
    assert s.packet().detect_mult == 5
    assert s.packet().required_min_rx == 200_000


def test_admin_down_is_announced_and_enable_starts_over() -> None:
    s = up()
    s.admin_down()
    assert (s.packet().state, s.packet().diag) == (State.ADMIN_DOWN, Diag.ADMIN_DOWN)
    s.enable()
    assert s.state == State.DOWN


EVENTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("rx"), st.sampled_from(State), st.booleans(), st.booleans(), st.integers(0, 2_000_000)
        ),
        st.tuples(st.just("wait"), st.floats(0, 5)),
        st.tuples(
            st.just("timers"), st.integers(1, 2_000_000), st.integers(0, 2_000_000), st.integers(1, 10)
        ),
    ),
    max_size=40,
)


@given(EVENTS)
def test_any_sequence_keeps_the_rfc_invariants(events: list[tuple[object, ...]]) -> None:
    s = session()
    now = 0.0
    for event in events:
        if event[0] == "rx":
            _, state, poll, final, rx = event
            your = 0xA if state in (State.INIT, State.UP) else 0
            s.receive(remote(state, your_discriminator=your, poll=poll and not final, final=final,
                             required_min_rx=rx), now)  # fmt: skip
        elif event[0] == "wait":
            now += float(event[1])  # type: ignore[arg-type]
            s.expire(now)
        else:
            _, tx, rx, mult = event
            s.reconfigure(Timers(int(tx), int(rx), int(mult)))  # type: ignore[call-overload]
        packet = s.packet()
        assert decode(encode(packet)) == packet
        assert not (packet.poll and s.state != State.UP)
        if s.state != State.UP:
            assert packet.desired_min_tx >= SLOW_TX
        delay = s.next_tx_delay()
        interval = s.tx_interval()
        if interval is not None and delay is not None:
            assert 0.75 * interval / 1e6 - 1e-9 <= delay <= interval / 1e6 + 1e-9
