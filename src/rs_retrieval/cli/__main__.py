"""`python -m rs_retrieval.cli ...`: the same command line as `rs-retrieval ...`."""

import sys

from . import main

sys.exit(main())
