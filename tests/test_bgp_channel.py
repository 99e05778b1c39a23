"""bgp.exabgp_channel: the ack protocol, over a real socket pair with the test playing ExaBGP's side.

Answers are matched to commands in order, at most `window` are unanswered, `alone` commands go
out with nothing else in flight, answers meant for an earlier connection are ignored, an overdue
answer gives up on the channel, and a relay that dropped lines closes it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bgp.exabgp_channel import (
    Channel,
    ChannelDown,
    CommandFailed,
    CommandTimeout,
    Event,
    NotificationEvent,
    SessionEvent,
)

SNAPSHOT = json.dumps([{"peer": {"address": "192.0.2.1"}, "fsm": "ESTABLISHED"}])


def state(peer: str, change: str) -> str:
    return json.dumps({"type": "state", "neighbor": {"address": {"peer": peer}, "state": change}})


@dataclass
class Pair:
    channel: Channel
    events: asyncio.Queue[Event]
    reader: asyncio.StreamReader  # what ExaBGP reads: our commands
    writer: asyncio.StreamWriter  # what ExaBGP writes: answers and events

    async def command(self) -> str:
        return (await asyncio.wait_for(self.reader.readline(), 5)).decode().rstrip("\n")

    async def say(self, *lines: str) -> None:
        self.writer.write("".join(line + "\n" for line in lines).encode())
        await self.writer.drain()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    their_reader, their_writer = await asyncio.open_connection(sock=theirs)
    events: asyncio.Queue[Event] = asyncio.Queue()
    channel = Channel(reader, writer, events, window=3, ack_timeout=5)
    yield Pair(channel, events, their_reader, their_writer)
    channel.close("test over")
    their_writer.close()
    await channel.closed()


async def opened(pair: Pair) -> None:
    opening = asyncio.ensure_future(pair.channel.open())
    assert await pair.command() == "show neighbor json"
    await pair.say(SNAPSHOT, "done")
    assert (await opening)[0] == {"192.0.2.1": "ESTABLISHED"}


async def test_open_ignores_answers_and_events_from_before_its_snapshot(pair: Pair) -> None:
    opening = asyncio.ensure_future(pair.channel.open())
    assert await pair.command() == "show neighbor json"
    # Answers to an earlier connection's commands, an event the snapshot already covers, the
    # snapshot, an event after it, and the answer to `show neighbor json`.
    await pair.say("done", "error", state("192.0.2.1", "up"), SNAPSHOT, state("192.0.2.1", "down"), "done")
    neighbors, held = await opening
    assert neighbors == {"192.0.2.1": "ESTABLISHED"}
    assert held == [SessionEvent("192.0.2.1", "down")]
    assert pair.events.empty()
    assert pair.channel.ready


async def test_answers_match_commands_in_order(pair: Pair) -> None:
    await opened(pair)
    futures = [await pair.channel.submit(f"command {i}") for i in range(3)]
    assert [await pair.command() for _ in range(3)] == ["command 0", "command 1", "command 2"]
    await pair.say("some output", "done", "error", state("192.0.2.1", "up"), '{ "answer": "done" }')
    assert await futures[0] == ["some output"]
    with pytest.raises(CommandFailed, match="command 1"):
        await futures[1]
    assert await futures[2] == []
    assert await pair.events.get() == SessionEvent("192.0.2.1", "up")


async def test_window_holds_back_the_fourth_command(pair: Pair) -> None:
    await opened(pair)
    futures = [await pair.channel.submit(f"c{i}") for i in range(3)]
    fourth = asyncio.ensure_future(pair.channel.submit("c3"))
    await asyncio.sleep(0)  # let it reach its wait: not a synchronisation, the assert below is
    assert not fourth.done()
    assert len(pair.channel.pending) == 3
    for _ in range(3):
        await pair.command()
    await pair.say("done")
    await futures[0]
    assert await pair.command() == "c3"  # sent only once an answer made room
    await fourth


async def test_alone_waits_for_quiet_and_keeps_it(pair: Pair) -> None:
    await opened(pair)
    first = await pair.channel.submit("before")
    alone = asyncio.ensure_future(pair.channel.submit("reload", alone=True))
    after = asyncio.ensure_future(pair.channel.submit("after"))
    assert await pair.command() == "before"
    await pair.say("done")
    await first
    assert await pair.command() == "reload"
    reload = await alone
    assert not after.done()
    await pair.say("reload in progress", "done")
    assert await reload == ["reload in progress"]
    assert await pair.command() == "after"
    await pair.say("done")
    await (await after)


async def test_an_overdue_answer_gives_up_and_reports_the_wedge(pair: Pair) -> None:
    await opened(pair)
    wedged: list[str] = []
    pair.channel.ack_timeout = 0.2
    pair.channel.on_wedged = wedged.append
    future = await pair.channel.submit("neighbor 192.0.2.1 announce route 192.0.2.7/32 next-hop self")
    with pytest.raises(CommandTimeout):
        await future
    assert wedged
    assert "no answer to 'neighbor 192.0.2.1 announce" in wedged[0]
    with pytest.raises(ChannelDown):
        await pair.channel.submit("anything")


async def test_relay_drops_and_lost_connections_fail_what_is_unanswered(pair: Pair) -> None:
    await opened(pair)
    future = await pair.channel.submit("c0")
    await pair.say(json.dumps({"type": "relay", "dropped": 3}))
    with pytest.raises(ChannelDown, match="dropped 3 lines"):
        await future
    await pair.channel.closed()
    assert pair.channel.close_reason == "the relay dropped 3 lines from ExaBGP"


async def test_a_closed_connection_fails_what_is_unanswered(pair: Pair) -> None:
    await opened(pair)
    future = await pair.channel.submit("c0")
    pair.writer.close()
    with pytest.raises(ChannelDown, match=r"API process gone|API channel broke"):
        await future


async def test_line_breaks_never_leave(pair: Pair) -> None:
    await opened(pair)
    for bad in ("a\nb", "a\rb", "caf\u00e9"):
        with pytest.raises(ValueError, match="refusing"):
            await pair.channel.submit(bad)
    assert not pair.channel.pending


def notification(peer: str, direction: str, code: int, subcode: int, data: str) -> str:
    body = {"code": code, "subcode": subcode, "data": data, "message": ""}
    neighbor = {"address": {"peer": peer}, "direction": direction, "notification": body}
    return json.dumps({"type": "notification", "neighbor": neighbor})


async def test_a_notification_from_the_router_becomes_an_event(pair: Pair) -> None:
    await opened(pair)
    await pair.say(
        notification("192.0.2.1", "send", 4, 0, "0x"),  # one we sent: the down event says so
        json.dumps({"type": "notification", "notification": "shutdown"}),  # ExaBGP's own notice
        notification("192.0.2.1", "receive", 3, 8, "0x4003047F000001"),
        state("192.0.2.1", "down"),
    )
    assert await pair.events.get() == NotificationEvent("192.0.2.1", 3, 8, "0x4003047F000001")
    assert await pair.events.get() == SessionEvent("192.0.2.1", "down")
