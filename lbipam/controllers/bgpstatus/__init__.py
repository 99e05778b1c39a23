"""The BGP status controller: Ready conditions of BGPPeers and BGPAdvertisements."""
