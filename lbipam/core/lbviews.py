"""The reduced, frozen views of Services and LoadBalancerIPPools that the LB-IPAM core works on.

Built from API objects in exactly one place (`lbipam.controllers.lbipam.convert`); the core
never sees a Kubernetes object. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from lbipam.core.addresses import Block
from lbipam.core.selectors import EVERYTHING, Selector

#: Service annotations and condition of the contract (DESIGN.md "Services").
ANNOTATION_IPS = "lbipam.io/ips"
ANNOTATION_POOL = "lbipam.io/pool"
ANNOTATION_SHARING_KEY = "lbipam.io/sharing-key"
ANNOTATION_SHARING_CROSS_NS = "lbipam.io/sharing-cross-namespace"
ANNOTATION_ALLOCATED_FROM = "lbipam.io/allocated-from"
CONDITION_SATISFIED = "lbipam.io/IPAMRequestSatisfied"
LABEL_SERVICE_NAME = "lbipam.io/service-name"
LABEL_SERVICE_NAMESPACE = "lbipam.io/service-namespace"
LB_CLASS = "lbipam.io/bgp"

SINGLE_STACK = "SingleStack"
PREFER_DUAL_STACK = "PreferDualStack"
REQUIRE_DUAL_STACK = "RequireDualStack"


@dataclass(frozen=True, slots=True)
class CurrentCondition:
    """The IPAMRequestSatisfied condition as the Service carries it now (to emit Events on change)."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What the LB-IPAM core needs to know of one Service."""

    namespace: str
    name: str
    uid: str = ""
    created: str = ""  # creationTimestamp, RFC 3339: sorts by age
    generation: int = 0
    handled: bool = True  # type LoadBalancer with a class lbipam serves
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    families: tuple[int, ...] = (4,)  # the IP families wanted, in order
    policy: str = SINGLE_STACK
    requested: tuple[str, ...] = ()  # requested IPs, as written
    requested_from: str = ANNOTATION_IPS  # the annotation or field they came from
    pools: tuple[str, ...] | None = None  # lbipam.io/pool pin, or None
    sharing_key: str | None = None
    sharing_namespaces: frozenset[str] = frozenset()  # lbipam.io/sharing-cross-namespace ("*" = all)
    ports: frozenset[tuple[str, int]] = frozenset()  # (protocol, port)
    traffic_policy: str = "Cluster"  # externalTrafficPolicy
    selector: tuple[tuple[str, str], ...] = ()  # spec.selector, sorted items
    ingress: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip now
    condition: CurrentCondition | None = None
    marked: bool = False  # carries lbipam.io/allocated-from: lbipam assigned its ingress
    allocated_from: tuple[str, ...] = ()  # the pools lbipam.io/allocated-from names
    problems: tuple[str, ...] = ()  # annotations that could not be parsed, as messages

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def match_labels(self) -> dict[str, str]:
        """Labels pool serviceSelectors see: the Service's plus the synthetic name/namespace ones."""
        return {**self.labels, LABEL_SERVICE_NAME: self.name, LABEL_SERVICE_NAMESPACE: self.namespace}


@dataclass(frozen=True, slots=True)
class Addresses:
    """The address part of a pool's spec (what its allocators hand out), as last accepted."""

    blocks: tuple[Block, ...]
    allow_first_last: bool = False
    avoid_buggy: bool = False
    generation: int = 0  # the pool's generation when it was accepted (0: unknown)


@dataclass(frozen=True, slots=True)
class PoolView:
    """A LoadBalancerIPPool as the core sees it; `problems` is non-empty for an invalid spec.

    An invalid spec's view still carries the rest of the spec (selectors, disabled, autoAssign,
    priority) when that part reads on its own; when it does not, the view is `frozen`: disabled,
    selecting no new Service, keeping the ones that hold its addresses. `recorded` is the address
    spec the pool's status says was last accepted (`status.accepted`), read at start-up."""

    name: str
    created: str = ""
    generation: int = 0
    blocks: tuple[Block, ...] = ()
    service_selector: Selector = EVERYTHING
    namespace_selector: Selector = EVERYTHING
    disabled: bool = False
    auto_assign: bool = True
    allow_first_last: bool = False
    avoid_buggy: bool = False
    priority: int = 0
    problems: tuple[str, ...] = ()
    frozen: bool = False  # the spec's rules cannot be read: keep the holders, select no one new
    recorded: Addresses | None = None  # status.accepted

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def addresses(self) -> Addresses:
        return Addresses(self.blocks, self.allow_first_last, self.avoid_buggy, self.generation)

    def serving_from(self, addresses: Addresses) -> PoolView:
        """This view (its rules) serving `addresses`: what an invalid spec is accepted as."""
        return replace(
            self,
            blocks=addresses.blocks,
            allow_first_last=addresses.allow_first_last,
            avoid_buggy=addresses.avoid_buggy,
            generation=addresses.generation,
            problems=(),
            recorded=None,
        )

    @property
    def age_key(self) -> tuple[str, str]:
        """Older pools sort first: creationTimestamp, then name."""
        return (self.created, self.name)

    @property
    def order_key(self) -> tuple[int, str]:
        """Pools are tried by priority (lower first), then name."""
        return (self.priority, self.name)

    def blocks_of(self, version: int) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.version == version)

    def same_addresses(self, other: PoolView) -> bool:
        """Whether an allocator built from `other` would hand out the same addresses."""
        return (self.blocks, self.allow_first_last, self.avoid_buggy) == (
            other.blocks,
            other.allow_first_last,
            other.avoid_buggy,
        )

    def selects(self, service: ServiceView) -> bool:
        if self.frozen:
            return False
        return self.service_selector.matches(service.match_labels) and self.namespace_selector.matches(
            service.namespace_labels
        )
