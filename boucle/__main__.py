"""python -m boucle: the boucle command."""

import sys

from boucle.cli import main

sys.exit(main())
