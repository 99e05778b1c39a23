"""Where the API is and how to authenticate: kubeconfig, $KUBECONFIG or in-cluster configuration.

Order (the one controller-runtime uses): an explicit `--kubeconfig`, else $KUBECONFIG (a
colon-separated list is merged, as kubectl does), else the in-cluster service account, else
~/.kube/config. kubernetes_asyncio's loaders do the parsing; their exceptions become
`KubeConfigError` naming the source. Called by `lbipam.k8s.client.connect` only.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config
from kubernetes_asyncio.config.incluster_config import SERVICE_HOST_ENV_NAME

from lbipam.k8s.errors import KubeConfigError

_load_incluster: Any = load_incluster_config  # untyped upstream


async def load_configuration(kubeconfig: str | None = None, *, context: str | None = None) -> Any:
    """A fresh kubernetes_asyncio Configuration (never the process-wide default)."""
    configuration = Configuration()
    source = kubeconfig or os.environ.get("KUBECONFIG") or None
    if source is None and os.environ.get(SERVICE_HOST_ENV_NAME):
        try:
            _load_incluster(client_configuration=configuration)
        except ConfigException as err:
            raise KubeConfigError(f"in-cluster configuration: {err}", reason="InClusterConfig") from err
        return configuration
    source = _kubeconfig_files(source)
    try:
        loader = await load_kube_config(
            config_file=source, context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as err:
        raise KubeConfigError(f"kubeconfig {source}: {err}", reason="KubeConfig") from err
    _refresh_exec_tokens(loader, configuration)
    return configuration


def _kubeconfig_files(source: str | None) -> str:
    """The kubeconfig path list to load; at least one of its files must exist."""
    if source is None:
        default = Path.home() / ".kube" / "config"
        if not default.is_file():
            raise KubeConfigError(
                "no --kubeconfig, no KUBECONFIG, not in a cluster, and no ~/.kube/config",
                reason="NoConfiguration",
            )
        return str(default)
    paths = [p for p in source.split(os.pathsep) if p]
    if not any(Path(p).expanduser().is_file() for p in paths):
        raise KubeConfigError(f"kubeconfig {source}: no such file", reason="KubeConfig")
    return source


def _refresh_exec_tokens(loader: Any, configuration: Any) -> None:
    """Renew exec-plugin tokens (EKS, GKE's gke-gcloud-auth-plugin, ...) when they expire.

    kubernetes_asyncio reads the token once; without this a controller fails with 401 after the
    token's lifetime (15 min on EKS). Only tokens with an expiry are refreshed: the plugin is not
    re-run per request.
    """
    if not hasattr(loader, "exec_plugin_expiry"):
        return

    async def refresh(config: Any) -> None:
        await loader.load_from_exec_plugin()  # returns at once while the token is still valid
        config.api_key["BearerToken"] = loader.token

    configuration.refresh_api_key_hook = refresh


def use_trust_env(configuration: Any) -> bool:
    """Whether the HTTP session must consult the environment: only when a proxy is configured.

    A kubeconfig `proxy-url`, or HTTPS_PROXY/HTTP_PROXY/ALL_PROXY applying to the API host (not
    bypassed by NO_PROXY). Otherwise trust_env only costs thread-pool hops per request.
    """
    if configuration.proxy:
        return True
    proxies = urllib.request.getproxies_environment()
    scheme = urlsplit(str(configuration.host)).scheme or "https"
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    host = urlsplit(str(configuration.host)).hostname or ""
    return not urllib.request.proxy_bypass(host)
