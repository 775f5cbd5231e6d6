import sys

from mnas.cli import main

sys.exit(main())
