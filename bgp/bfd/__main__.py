"""`python -m bgp.bfd`: the BFD process of a speaker (see `bgp.bfd.daemon`)."""

import sys

from bgp.bfd.daemon import main

sys.exit(main())
