"""`python -m tools.contract [--check]`: write or check every generated contract file (see registry)."""

import sys

from tools.contract.registry import main

sys.exit(main())
