"""One BFD session's state and rules (RFC 5880 section 6.8), asynchronous mode, no I/O.

`Session` holds the state variables of RFC 5880 section 6.8.1 and applies the reception rules
(6.8.6), the timer negotiation (6.8.2-6.8.4: slow 1 s transmission until Up, detection time =
the remote multiplier x the agreed interval), poll/final sequences when the local intervals
change (6.8.3, 6.5) and the transmission rules with jitter (6.8.7). Time is given by the
caller in seconds (a monotonic clock), randomness through `jitter`, so every rule is tested
with plain numbers. Demand mode, echo and authentication are not implemented (the session
never asks for them, and refuses authenticated packets in `bgp.bfd.packet`).

We run in the speaker, beside the control plane: the C bit is clear (RFC 5880 section 4.1).
Called by `bgp.bfd.engine`, which does the sending, receiving and timers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bgp.bfd.packet import ControlPacket, Diag, State

#: Transmission interval while the session is not Up (RFC 5880 section 6.8.3), microseconds.
SLOW_TX = 1_000_000


@dataclass(frozen=True, slots=True)
class Timers:
    """The locally configured intervals (microseconds) and detection multiplier."""

    desired_min_tx: int = 300_000
    required_min_rx: int = 300_000
    detect_mult: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.detect_mult <= 255:
            raise ValueError(f"detect multiplier {self.detect_mult} is not in 1..255")
        if not 1 <= self.desired_min_tx <= 0xFFFFFFFF or not 0 <= self.required_min_rx <= 0xFFFFFFFF:
            raise ValueError("intervals are 32-bit microsecond counts, the TX one at least 1")


def uniform_jitter() -> float:
    """A fraction in [0, 1) for the jitter of RFC 5880 section 6.8.7."""
    return random.random()  # jitter, not a secret


class Session:
    """The state of one session; `receive`, `expire`, `reconfigure` and `admin_down` change it."""

    def __init__(
        self, timers: Timers, local_discr: int, jitter: Callable[[], float] = uniform_jitter
    ) -> None:
        if not 1 <= local_discr <= 0xFFFFFFFF:
            raise ValueError("the local discriminator is a non-zero 32-bit number")
        self.timers = timers
        self.local_discr = local_discr
        self.jitter = jitter
        self.state = State.DOWN
        self.remote_state = State.DOWN
        self.remote_discr = 0
        self.diag = Diag.NONE
        self.remote_min_rx = 1  # bfd.RemoteMinRxInterval starts at 1 microsecond
        self.remote_desired_tx = 0  # the last Desired Min TX Interval received
        self.remote_mult = 0
        self.polling = False
        self.last_rx: float | None = None  # when the last valid packet came
        self._advertised_tx = max(timers.desired_min_tx, SLOW_TX)  # bfd.DesiredMinTxInterval
        self._tx_in_use = self._advertised_tx  # differs while a poll for a slower TX runs
        self._rx_in_use = timers.required_min_rx  # differs while a poll for a faster RX runs

    # ---- what goes out ------------------------------------------------------------------------
    def packet(self, *, final: bool = False) -> ControlPacket:
        """The next Control packet (6.8.7); `final` answers a poll (and then carries no P bit)."""
        return ControlPacket(
            state=self.state,
            my_discriminator=self.local_discr,
            your_discriminator=self.remote_discr,
            diag=self.diag,
            detect_mult=self.timers.detect_mult,
            desired_min_tx=self._advertised_tx,
            required_min_rx=self.timers.required_min_rx,
            poll=self.polling and not final,
            final=final,
        )

    def tx_interval(self) -> int | None:
        """Microseconds between periodic packets, before jitter; None: send none (the remote
        asked for none by a Required Min RX Interval of zero)."""
        if self.remote_min_rx == 0:
            return None
        return max(self._tx_in_use, self.remote_min_rx)

    def next_tx_delay(self) -> float | None:
        """Seconds until the next periodic packet: the interval less 0-25% jitter (10-25% with a
        multiplier of 1, so that one late packet never looks like a failure)."""
        interval = self.tx_interval()
        if interval is None:
            return None
        low = 0.10 if self.timers.detect_mult == 1 else 0.0
        reduction = low + (0.25 - low) * self.jitter()
        return interval * (1.0 - reduction) / 1e6

    # ---- detection ----------------------------------------------------------------------------
    def detection_time(self) -> float | None:
        """Seconds without a packet after which the session fails (6.8.4); None before any."""
        if self.remote_mult == 0:
            return None
        return self.remote_mult * max(self._rx_in_use, self.remote_desired_tx) / 1e6

    def deadline(self) -> float | None:
        """When the detection time runs out, if a packet came at all."""
        detect = self.detection_time()
        if self.last_rx is None or detect is None:
            return None
        return self.last_rx + detect

    def expire(self, now: float) -> bool:
        """Apply the detection timer at `now`; True when the session went Down by it."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self.remote_discr = 0  # 6.8.1: forgotten after a detection time of silence
        self.last_rx = None
        if self.state in (State.INIT, State.UP):
            self._go(State.DOWN, Diag.DETECTION_EXPIRED)
            return True
        return False

    # ---- reception (6.8.6) --------------------------------------------------------------------
    def receive(self, packet: ControlPacket, now: float) -> bool:
        """Apply a packet that `bgp.bfd.packet.decode` accepted and that was selected for this
        session. Returns whether a packet with the Final bit is due at once (the remote polls)."""
        self.remote_discr = packet.my_discriminator
        self.remote_state = packet.state
        self.remote_min_rx = packet.required_min_rx
        self.remote_desired_tx = packet.desired_min_tx
        self.remote_mult = packet.detect_mult
        self.last_rx = now
        if packet.final and self.polling:
            self._end_poll()
        if self.state == State.ADMIN_DOWN:
            return False
        if packet.state == State.ADMIN_DOWN:
            if self.state != State.DOWN:
                self._go(State.DOWN, Diag.NEIGHBOR_DOWN)
        elif self.state == State.DOWN:
            if packet.state == State.DOWN:
                self._go(State.INIT, Diag.NONE)
            elif packet.state == State.INIT:
                self._go(State.UP, Diag.NONE)
        elif self.state == State.INIT:
            if packet.state in (State.INIT, State.UP):
                self._go(State.UP, Diag.NONE)
        elif packet.state == State.DOWN:  # we are Up
            self._go(State.DOWN, Diag.NEIGHBOR_DOWN)
        return packet.poll

    # ---- local changes ------------------------------------------------------------------------
    def reconfigure(self, timers: Timers) -> None:
        """New local timers. While Up, a poll sequence carries them (6.8.3): a slower TX and a
        faster RX take effect only when the remote has answered it."""
        if timers == self.timers:
            return
        old = self.timers
        self.timers = timers
        self._set_tx(self._desired_for(self.state))
        if self.state == State.UP:
            self.polling = True
            if timers.required_min_rx >= old.required_min_rx:
                self._rx_in_use = timers.required_min_rx
        else:
            self._rx_in_use = timers.required_min_rx

    def admin_down(self) -> None:
        """Take the session down administratively (6.8.16): the remote must not see a failure."""
        self._go(State.ADMIN_DOWN, Diag.ADMIN_DOWN)

    def enable(self) -> None:
        """Leave AdminDown for Down: the session starts over."""
        if self.state == State.ADMIN_DOWN:
            self._go(State.DOWN, Diag.NONE)

    # ---- internals ----------------------------------------------------------------------------
    def _desired_for(self, state: State) -> int:
        return self.timers.desired_min_tx if state == State.UP else max(self.timers.desired_min_tx, SLOW_TX)

    def _go(self, state: State, diag: Diag) -> None:
        self.state, self.diag = state, diag
        if state != State.UP:
            self.polling = False  # a poll belongs to an Up session
            self._rx_in_use = self.timers.required_min_rx
        self._set_tx(self._desired_for(state))

    def _set_tx(self, desired: int) -> None:
        """A new bfd.DesiredMinTxInterval. While Up, a change is announced by a poll sequence;
        a slower interval is only used once the remote has answered it (6.8.3)."""
        if desired == self._advertised_tx:
            return
        self._advertised_tx = desired
        if self.state == State.UP:
            self.polling = True
            self._tx_in_use = min(self._tx_in_use, desired)
        else:
            self._tx_in_use = desired

    def _end_poll(self) -> None:
        self.polling = False
        self._tx_in_use = self._advertised_tx
        self._rx_in_use = self.timers.required_min_rx
