"""lbipam: LoadBalancer IPAM, PodCIDR allocation and BGP announcement for bare-metal Kubernetes."""

__version__ = "0.1.0"
