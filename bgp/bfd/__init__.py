"""BFD (RFC 5880 asynchronous mode; single hop RFC 5881, multihop RFC 5883) for the speaker.

Made of:
- `packet`: Control packet codec and the per-packet reception checks (pure);
- `session`: one session's state machine and timer negotiation (pure; time is an argument);
- `sockets`: the UDP sockets (TTL 255 out, TTL read on receipt, source ports 49152-65535);
- `engine`: runs sessions on asyncio (timer callbacks, demultiplexing, TTL check);
- `daemon`: `python -m bgp.bfd`, the engine in a process of its own, driven by JSON lines;
- `client`: the speaker's side of that process.
The speaker (`bgp.speaker`) owns a `client.BfdClient`; nothing here knows Kubernetes or ExaBGP.
"""
