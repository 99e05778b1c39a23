"""The BGP speaker (`lbipam speaker --node NAME`): one node's Service IPs and PodCIDRs, announced to
its routers through an ExaBGP child process.

Made of, from the cluster to the wire (each module says what it owns):

- `main`: the command line; builds a `speaker.Speaker` and its `driver.Driver`, runs them until
  SIGTERM.
- `speaker`: informers over the cluster objects, the planning loop, and shutdown. Per round it
  converts objects to views (`convert`, `views`; TCP MD5 Secrets via `secrets`), asks the
  planner, hands the plan to the driver, and has `nodestate` tell people. On SIGTERM it asks
  `rules.on_sigterm` per peer: a rollout keeps the routes with the routers (graceful restart), a
  drain or departure withdraws them, and `driver.stop(keep)` does it.
- The pure decisions (no I/O): `planner.plan_routes` (what goes to which peer, with a reason code
  for every Service IP; pool lookups in `poolindex`), `rules` (next hop per family, attributes
  and GRACEFUL_SHUTDOWN, rollout or drain), `session` (which peers open, states, the reconnect
  back-off, what a router's NOTIFICATION says), `routes` (the difference against what ExaBGP
  acknowledged, as commands) and `render` (every line of ExaBGP text, injection-proof).
- `driver.Driver`: makes ExaBGP announce a plan, declaratively; keeps each peer's session
  (`session.PeerSession`), sends through `sender`, reads ExaBGP's view of its neighbors through
  `neighbors`; backs off a failing session and holds one down on request (`hold_down` /
  `release`, for BFD) by leaving it out of ExaBGP's configuration.
- `exabgp.ExaBGP`: the supervised child process, its configuration (validated) and the API
  channel (`exabgp_channel`: acks, session and NOTIFICATION events) to the API process ExaBGP
  runs, `relay`, which copies lines between ExaBGP's pipes and a Unix socket.
- `nodestate`: BGPNodeState (written only when what a user reads changed, at most every few
  seconds) and the Warning Events about bad input and refusing routers.

Calls run one way: main -> speaker -> (planner, rules, convert, nodestate, driver); driver ->
(sender, session, neighbors, exabgp) -> exabgp_channel; the relay runs in its own process. ExaBGP
itself is imported nowhere: it is only ever run.
"""
