"""`python -m lbipam` is the `lbipam` command."""

import sys

from lbipam.cli import main

sys.exit(main())
