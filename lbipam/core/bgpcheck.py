"""Whether a BGPPeer or a BGPAdvertisement can be used: its `Ready` condition, and which of two
BGPPeers toward one address a node's speaker opens. Pure: no I/O, no clock.

The leading controller writes what `judge_peers` and `judge_advertisements` say as conditions;
the speaker opens no session `address_losses` names for its node. Both decide from the objects
alone (specs, creationTimestamps, names, Node labels), never from a condition, so every process,
before and after any restart, opens the same session toward a contested address.

- InvalidSpec: what the schema cannot express (a sourceAddress of the other family, ...).
- SecretNotFound / SecretKeyMissing / SecretUnreadable / InvalidPassword (SecretNotRead before the
  first read): the TCP MD5 password's Secret. Messages give a password's length, never its text.
- AddressInUse: of the valid BGPPeers one node would open toward one peerAddress, the older
  (creationTimestamp, then name) keeps it. Peers whose nodeSelectors share no node (one per node,
  as MetalLB users write them) are no conflict, nor are two that name different sourceAddresses
  (the router sees two sessions; without a sourceAddress the kernel picks one, so that clashes
  with any). Seniority decides greedily: a peer loses to the oldest peer it clashes with that
  keeps the address on that node. A peer that loses on any node is not Ready.
- PeerNotFound (BGPAdvertisement): a name in `peers` that no BGPPeer has.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from lbipam.api import BGPAdvertisement, BGPPeer, BGPPeerSpec, compiled, describe_errors
from lbipam.api.common import check_safe
from lbipam.core.addresses import parse_address
from lbipam.core.selectors import Selector

Obj = Mapping[str, Any]
READY = "Ready"
VALID = "Valid"
INVALID_SPEC = "InvalidSpec"
SECRET_NOT_READ = "SecretNotRead"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_MISSING = "SecretKeyMissing"
SECRET_UNREADABLE = "SecretUnreadable"
INVALID_PASSWORD = "InvalidPassword"
ADDRESS_IN_USE = "AddressInUse"
PEER_NOT_FOUND = "PeerNotFound"
MAX_MD5_KEY = 80  # bytes: TCP_MD5SIG_MAXKEYLEN of Linux (and RFC 2385 practice)
NAMED_NODES = 3  # nodes named in an AddressInUse message; the rest are counted


# ---- the MD5 password's Secret --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SecretRef:
    namespace: str
    name: str
    key: str = "password"

    @property
    def where(self) -> tuple[str, str]:
        """(namespace, name): what is read from the API (the key is picked from its data)."""
        return self.namespace, self.name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class SecretRead:
    """The outcome of the last GET of a Secret: its `data` (base64 values) or why there is none."""

    data: Mapping[str, str] | None = None
    missing: bool = False  # 404
    error: str = ""  # anything else (403, ...)


def secret_ref(obj: Obj) -> SecretRef | None:
    """The Secret a BGPPeer's password lives in, as written (None when there is none or it is
    malformed: the peer's validation reports that)."""
    ref = (obj.get("spec") or {}).get("passwordSecretRef")
    if not isinstance(ref, Mapping) or not ref.get("namespace") or not ref.get("name"):
        return None
    return SecretRef(str(ref["namespace"]), str(ref["name"]), str(ref.get("key") or "password"))


def check_password(ref: SecretRef, read: SecretRead | None) -> tuple[str | None, tuple[str, str] | None]:
    """(password, None) or (None, (reason, message)); the message never holds the password."""
    field = "spec.passwordSecretRef"
    if read is None:
        return None, (SECRET_NOT_READ, f"{field}: Secret {ref} has not been read yet")
    if read.missing:
        return None, (SECRET_NOT_FOUND, f"{field}: Secret {ref} not found")
    if read.data is None:
        return None, (SECRET_UNREADABLE, f"{field}: Secret {ref} could not be read: {read.error}")
    if ref.key not in read.data:
        keys = ", ".join(sorted(read.data)) or "none"
        return None, (SECRET_KEY_MISSING, f"{field}.key: Secret {ref} has no key {ref.key!r} (keys: {keys})")
    try:
        raw = base64.b64decode(read.data[ref.key], validate=True)
        text = raw.decode("utf-8")
        check_safe(text)
    except (binascii.Error, ValueError):
        return None, (
            INVALID_PASSWORD,
            f"{field}: key {ref.key!r} of Secret {ref} is not printable UTF-8 text "
            "(no control characters or line breaks)",
        )
    if not text or len(raw) > MAX_MD5_KEY:
        return None, (
            INVALID_PASSWORD,
            f"{field}: key {ref.key!r} of Secret {ref} must be 1 to {MAX_MD5_KEY} bytes, is {len(raw)}",
        )
    return text, None


# ---- the specs ----------------------------------------------------------------------------------
def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def age(obj: Obj) -> tuple[str, str]:
    """The order of seniority: creationTimestamp (RFC 3339, UTC: sorts as text), then name."""
    return str((obj.get("metadata") or {}).get("creationTimestamp") or ""), _name(obj)


def peer_spec(obj: Obj) -> tuple[BGPPeerSpec | None, list[str]]:
    """The validated spec, or None and every InvalidSpec message (naming the field)."""
    try:
        return BGPPeer.model_validate({**obj, "status": None}).spec, []
    except pydantic.ValidationError as err:
        return None, describe_errors(err)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A Ready condition: status "True" (reason Valid) or "False" with the first problem's reason."""

    status: str
    reason: str
    message: str

    @property
    def ready(self) -> bool:
        return self.status == "True"


def _verdict(kind: str, name: str, problems: Sequence[tuple[str, str]]) -> Verdict:
    if not problems:
        return Verdict("True", VALID, f"{kind} {name} is valid")
    return Verdict("False", problems[0][0], f"{kind} {name}: " + "; ".join(m for _, m in problems))


# ---- the peerAddress contest --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Contender:
    """A BGPPeer with a valid spec, as the contest sees it."""

    name: str
    age: tuple[str, str]
    address: str  # canonical
    selector: Selector
    source: str | None = None  # canonical sourceAddress

    def clashes(self, other: Contender) -> bool:
        """One session to the router: one peer address, and one local address (or either unset)."""
        same_source = self.source is None or other.source is None or self.source == other.source
        return self.address == other.address and same_source


@dataclass(frozen=True, slots=True)
class Loss:
    """A peer that does not open toward `address` on `nodes`, where `keepers` (older) do."""

    address: str
    keepers: tuple[str, ...]
    nodes: tuple[str, ...]  # sorted

    def message(self) -> str:
        named = ", ".join(self.nodes[:NAMED_NODES])
        more = len(self.nodes) - NAMED_NODES
        where = f"node{'s' if len(self.nodes) > 1 else ''} {named}" + (
            f" and {more} more" if more > 0 else ""
        )
        keeper = f"BGPPeer{'s' if len(self.keepers) > 1 else ''} {', '.join(self.keepers)}"
        return (
            f"spec.peerAddress: {self.address} is kept by the older {keeper} on {where}, "
            "where this session is not opened"
        )


def contender(obj: Obj, spec: BGPPeerSpec | None = None) -> Contender | None:
    """The peer in the contest, or None when its spec does not validate (it opens nothing)."""
    if spec is None:
        spec = peer_spec(obj)[0]
    if spec is None:
        return None
    source = str(parse_address(spec.source_address)) if spec.source_address else None
    address = str(parse_address(spec.peer_address))
    return Contender(_name(obj), age(obj), address, compiled(spec.node_selector), source)


def address_losses(
    contenders: Iterable[Contender], nodes: Iterable[tuple[str, Mapping[str, str]]]
) -> dict[str, Loss]:
    """The peers that some node in `nodes` (name, labels) would open toward an address an older
    peer it also opens keeps (from the same local address); by peer name. The speaker passes its
    own node only."""
    groups: dict[str, list[Contender]] = {}
    for c in contenders:
        groups.setdefault(c.address, []).append(c)
    contested = [sorted(g, key=lambda c: c.age) for g in groups.values() if len(g) > 1]
    if not contested:
        return {}
    lost: dict[str, tuple[str, set[str], set[str]]] = {}  # name -> (address, keepers, nodes)
    for node, labels in nodes:
        for group in contested:
            kept: list[Contender] = []
            for c in group:
                if not c.selector.matches(labels):
                    continue
                keeper = next((k for k in kept if k.clashes(c)), None)
                if keeper is None:
                    kept.append(c)
                    continue
                entry = lost.setdefault(c.name, (c.address, set(), set()))
                entry[1].add(keeper.name)
                entry[2].add(node)
    return {
        name: Loss(address, tuple(sorted(keepers)), tuple(sorted(where)))
        for name, (address, keepers, where) in lost.items()
    }


# ---- the judgements -----------------------------------------------------------------------------
def judge_peers(
    objs: Iterable[Obj],
    nodes: Iterable[tuple[str, Mapping[str, str]]],
    secrets: Mapping[tuple[str, str], SecretRead],
) -> dict[str, Verdict]:
    """Every BGPPeer's Ready condition, by name. `secrets`: the reads of the Secrets the peers
    name (a peer whose Secret is not among them is SecretNotRead)."""
    objs = list(objs)
    specs = {_name(o): peer_spec(o) for o in objs}
    contenders = [c for o in objs if (c := contender(o, specs[_name(o)][0])) is not None]
    losses = address_losses(contenders, nodes)
    verdicts = {}
    for obj in objs:
        name = _name(obj)
        spec, invalid = specs[name]
        problems = [(INVALID_SPEC, m) for m in invalid]
        ref = secret_ref(obj) if spec is not None and spec.password_secret_ref is not None else None
        if ref is not None:
            problem = check_password(ref, secrets.get(ref.where))[1]
            if problem is not None:
                problems.append(problem)
        if name in losses:
            problems.append((ADDRESS_IN_USE, losses[name].message()))
        verdicts[name] = _verdict("BGPPeer", name, problems)
    return verdicts


def judge_advertisements(objs: Iterable[Obj], peer_names: Iterable[str]) -> dict[str, Verdict]:
    """Every BGPAdvertisement's Ready condition, by name; `peer_names`: every BGPPeer's name."""
    known = set(peer_names)
    verdicts = {}
    for obj in objs:
        name = _name(obj)
        try:
            spec = BGPAdvertisement.model_validate({**obj, "status": None}).spec
        except pydantic.ValidationError as err:
            verdicts[name] = _verdict(
                "BGPAdvertisement", name, [(INVALID_SPEC, m) for m in describe_errors(err)]
            )
            continue
        problems = [
            (PEER_NOT_FOUND, f"spec.peers[{i}]: no BGPPeer is named {peer!r}")
            for i, peer in enumerate(spec.peers)
            if peer not in known
        ]
        verdicts[name] = _verdict("BGPAdvertisement", name, problems)
    return verdicts
