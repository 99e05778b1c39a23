"""BFD Control packets against the layout of RFC 5880 section 4.1, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgp.bfd.packet import ControlPacket, Diag, PacketError, State, decode, encode

# RFC 5880 4.1: Vers(3) Diag(5) | Sta(2) P F C A D M | Detect Mult | Length | My Discr |
# Your Discr | Desired Min TX | Required Min RX | Required Min Echo RX, network byte order.
GOLDEN = [
    pytest.param(
        ControlPacket(State.DOWN, my_discriminator=0x11223344, detect_mult=3),
        "20 40 03 18 11223344 00000000 000f4240 000f4240 00000000",
        id="down-slow-start-1s",
    ),
    pytest.param(
        ControlPacket(State.UP, 1, 2, desired_min_tx=300_000, required_min_rx=300_000, poll=True),
        "20 e0 03 18 00000001 00000002 000493e0 000493e0 00000000",
        id="up-300ms-poll",
    ),
    pytest.param(
        ControlPacket(State.INIT, 7, 9, final=True, detect_mult=5, desired_min_tx=50_000),
        "20 90 05 18 00000007 00000009 0000c350 000f4240 00000000",
        id="init-final-mult5",
    ),
    pytest.param(
        ControlPacket(State.ADMIN_DOWN, 0xFFFFFFFF, 0, Diag.ADMIN_DOWN),
        "27 00 03 18 ffffffff 00000000 000f4240 000f4240 00000000",
        id="admin-down-diag7",
    ),
    pytest.param(
        ControlPacket(State.DOWN, 5, 6, Diag.DETECTION_EXPIRED, control_plane_independent=True),
        "21 48 03 18 00000005 00000006 000f4240 000f4240 00000000",
        id="down-expired-cbit",
    ),
]


@pytest.mark.parametrize(("packet", "wire"), GOLDEN)
def test_encode_matches_the_rfc_layout(packet: ControlPacket, wire: str) -> None:
    assert encode(packet) == bytes.fromhex(wire.replace(" ", ""))


@pytest.mark.parametrize(("packet", "wire"), GOLDEN)
def test_decode_reads_the_rfc_layout(packet: ControlPacket, wire: str) -> None:
    assert decode(bytes.fromhex(wire.replace(" ", ""))) == packet


def _raw(**changes: str) -> bytes:
    fields = {"vd": "20", "flags": "c0", "mult": "03", "len": "18", "mine": "00000001", "yours": "00000002"}
    fields.update(changes)
    tail = "000493e0 000493e0 00000000"
    return bytes.fromhex("".join(fields.values()) + tail.replace(" ", ""))


DISCARDED = [
    pytest.param(_raw(vd="40"), "version", id="version-2"),
    pytest.param(_raw(len="14"), "length", id="length-below-24"),
    pytest.param(_raw(len="1a"), "length", id="length-beyond-the-datagram"),
    pytest.param(_raw(mult="00"), "detect multiplier", id="multiplier-zero"),
    pytest.param(_raw(flags="c1"), "multipoint", id="m-bit"),
    pytest.param(_raw(flags="c4", len="18"), "authentication", id="a-bit-without-auth"),
    pytest.param(_raw(mine="00000000"), "my discriminator", id="my-discriminator-zero"),
    pytest.param(_raw(yours="00000000"), "your discriminator", id="your-zero-while-up"),
    pytest.param(_raw(flags="80", yours="00000000"), "your discriminator", id="your-zero-while-init"),
    pytest.param(b"\x20\x40\x03", "length", id="truncated"),
]


@pytest.mark.parametrize(("data", "field"), DISCARDED)
def test_packets_the_rfc_says_to_discard_are_refused_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(PacketError, match=field):
        decode(data)


def test_your_discriminator_zero_is_fine_in_down_and_admin_down() -> None:
    assert decode(_raw(flags="40", yours="00000000")).state == State.DOWN
    assert decode(_raw(flags="00", yours="00000000")).state == State.ADMIN_DOWN


def test_poll_and_final_together_are_never_sent() -> None:
    with pytest.raises(PacketError, match="Poll and the Final"):
        encode(ControlPacket(State.UP, 1, 2, poll=True, final=True))


u32 = st.integers(1, 0xFFFFFFFF)


@given(
    state=st.sampled_from(State),
    mine=u32,
    yours=u32,
    diag=st.sampled_from(Diag),
    mult=st.integers(1, 255),
    tx=u32,
    rx=st.integers(0, 0xFFFFFFFF),
    flag=st.sampled_from(["poll", "final", "none"]),
)
def test_every_packet_we_can_send_decodes_to_itself(
    state: State, mine: int, yours: int, diag: Diag, mult: int, tx: int, rx: int, flag: str
) -> None:
    packet = ControlPacket(state, mine, yours, diag, mult, tx, rx, poll=flag == "poll", final=flag == "final")
    assert decode(encode(packet)) == packet
