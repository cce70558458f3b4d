"""``python -m mbwrap``: the ``mbwrap`` command."""

import sys

from mbwrap.cli import main

sys.exit(main())
