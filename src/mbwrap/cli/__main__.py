import sys

from mbwrap.cli import main

sys.exit(main())
