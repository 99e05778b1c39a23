"""The PodCIDR controller: hands every Node its pod CIDRs from PodCIDRPools, into one of four targets."""
