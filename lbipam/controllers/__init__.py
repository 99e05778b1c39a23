"""The controllers: LB-IPAM (Services and pools) and PodCIDR (Nodes and pools). Views in, plans out
(lbipam.core), and thin executors that write what the plans say through lbipam.k8s."""
