"""The Secrets the BGPPeers' TCP MD5 passwords live in, read one by one by name (RBAC: get only,
no list or watch), for the speaker (`bgp.speaker`) and the controller's BGP status
(`lbipam.controllers.bgpstatus`): again when a peer changes (marked `stale`) and on a refresh
timer. What was read goes to `lbipam.core.bgpcheck.check_password`; nothing of it is logged.
"""

from __future__ import annotations

from lbipam.core.bgpcheck import SecretRead
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import KubeError, NotFound, TemporaryError
from lbipam.k8s.resources import SECRETS

Key = tuple[str, str]


class Secrets:
    """The Secrets the peers' passwords live in, read by name (RBAC: get only, no list/watch)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.reads: dict[Key, SecretRead] = {}
        self.stale: set[Key] = set()

    async def read(self, wanted: set[Key], *, force: bool = False) -> bool:
        """GET the wanted Secrets not read yet (or stale, or all with `force`); forget the rest.
        Returns whether anything read differs from before."""
        for key in set(self.reads) - wanted:
            del self.reads[key]
        due = wanted if force else {k for k in wanted if k not in self.reads or k in self.stale}
        changed = False
        for key in sorted(due):
            self.stale.discard(key)
            read = await self._get(key)
            if read != self.reads.get(key):
                self.reads[key] = read
                changed = True
        return changed

    async def _get(self, key: Key) -> SecretRead:
        namespace, name = key
        try:
            obj = await self.kube.get(SECRETS, name, namespace=namespace)
        except NotFound:
            return SecretRead(missing=True)
        except TemporaryError as err:
            self.stale.add(key)  # try again next round; keep what we had meanwhile
            return self.reads.get(key) or SecretRead(error=str(err))
        except KubeError as err:
            return SecretRead(error=str(err))
        return SecretRead(data=dict(obj.get("data") or {}))
