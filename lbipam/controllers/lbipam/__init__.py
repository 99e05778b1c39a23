"""The LB-IPAM controller: gives Services of type LoadBalancer IPs from LoadBalancerIPPools."""
