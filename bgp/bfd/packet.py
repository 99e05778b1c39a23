"""BFD Control packets (RFC 5880 section 4.1): encode and decode, with the reception checks.

Pure (no I/O). `decode` applies the checks of RFC 5880 section 6.8.6 that need only the packet
(version, length, detect multiplier, multipoint bit, discriminators) and raises `PacketError`
naming the field at fault; the session-level rules (which session, state) are `bgp.bfd.session`'s.
Authentication is not implemented: a packet with the A bit is refused, as the RFC requires of a
session with no authentication configured. Called by `bgp.bfd.session` and `bgp.bfd.engine`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 1
LENGTH = 24  # the mandatory section; we never add an authentication section
_FORMAT = struct.Struct("!BBBBIIIII")


class State(enum.IntEnum):
    """bfd.SessionState (RFC 5880 section 4.1, "Sta")."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3

    @property
    def label(self) -> str:
        """The name BGPNodeState shows: AdminDown, Down, Init, Up."""
        return {0: "AdminDown", 1: "Down", 2: "Init", 3: "Up"}[self.value]


class Diag(enum.IntEnum):
    """bfd.LocalDiag (RFC 5880 section 4.1)."""

    NONE = 0
    DETECTION_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_DOWN = 3
    FORWARDING_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


class PacketError(ValueError):
    """A packet to discard; the message says which field broke which rule."""


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One BFD Control packet; intervals in microseconds, as on the wire."""

    state: State
    my_discriminator: int
    your_discriminator: int = 0
    diag: Diag = Diag.NONE
    detect_mult: int = 3
    desired_min_tx: int = 1_000_000
    required_min_rx: int = 1_000_000
    required_min_echo_rx: int = 0
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False  # the C bit
    demand: bool = False
    version: int = VERSION


def encode(packet: ControlPacket) -> bytes:
    """The 24 bytes of the packet (no authentication section)."""
    if packet.poll and packet.final:
        raise PacketError("a packet must not have both the Poll and the Final bit (RFC 5880 6.5)")
    flags = (
        (int(packet.state) << 6)
        | (packet.poll << 5)
        | (packet.final << 4)
        | (packet.control_plane_independent << 3)
        | (packet.demand << 1)
    )
    return _FORMAT.pack(
        (packet.version << 5) | int(packet.diag),
        flags,
        packet.detect_mult,
        LENGTH,
        packet.my_discriminator,
        packet.your_discriminator,
        packet.desired_min_tx,
        packet.required_min_rx,
        packet.required_min_echo_rx,
    )


def decode(data: bytes) -> ControlPacket:
    """The packet in `data`, or `PacketError` when RFC 5880 section 6.8.6 says to discard it."""
    if len(data) < LENGTH:
        raise PacketError(f"length: {len(data)} bytes received, a Control packet has at least {LENGTH}")
    vers_diag, flags, detect_mult, length, mine, yours, tx, rx, echo = _FORMAT.unpack_from(data)
    version = vers_diag >> 5
    if version != VERSION:
        raise PacketError(f"version: {version}, only version {VERSION} is spoken")
    if flags & 0x04:  # A
        raise PacketError("authentication: the A bit is set but no authentication is configured")
    if length < LENGTH or length > len(data):
        raise PacketError(f"length: field says {length}, {len(data)} bytes received")
    if detect_mult == 0:
        raise PacketError("detect multiplier: zero")
    if flags & 0x01:  # M
        raise PacketError("multipoint: the M bit is set")
    if mine == 0:
        raise PacketError("my discriminator: zero")
    state = State(flags >> 6)
    if yours == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise PacketError(f"your discriminator: zero in state {state.label}")
    diag_value = vers_diag & 0x1F
    return ControlPacket(
        state=state,
        my_discriminator=mine,
        your_discriminator=yours,
        diag=Diag(diag_value) if diag_value in Diag._value2member_map_ else Diag.NONE,
        detect_mult=detect_mult,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo,
        poll=bool(flags & 0x20),
        final=bool(flags & 0x10),
        control_plane_independent=bool(flags & 0x08),
        demand=bool(flags & 0x02),
        version=version,
    )
