"""`lbipam demo`: the whole product on the embedded API server, for a first look."""
