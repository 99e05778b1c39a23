"""lbipam's Kubernetes layer: the only package that imports kubernetes_asyncio.

- `client`: `connect()` -> `Kube` (get/list/list_all/watch/create/replace/patch/delete over plain dicts)
- `resources`: `Resource` descriptors and constants for every kind lbipam touches
- `errors`: typed errors (`TemporaryError` / `PermanentError` and subclasses), `Backoff`, `retry`
- `informer`: `Informer`, the list-then-watch loop and cache for one kind
- `status`: `StatusWriter`, status/metadata merge patches made only when something changed
- `events`: `EventRecorder`, events.k8s.io/v1 Events with series aggregation
- `leader`: `LeaderElector`, leader election on a coordination.k8s.io/v1 Lease
- `tasks`: `run_until_signal` / `Tasks`, named tasks under one TaskGroup, SIGTERM draining
- `logs`: `KVLog`, key=value logs bound to an object
- internals: `config` (kubeconfig / in-cluster loading, trust_env), `wire` (patch types, watch
  framing), `times` (metav1.Time / MicroTime text)
"""
