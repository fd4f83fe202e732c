"""`python -m bench`: the same as `boucle bench`."""

from bench.run import main

raise SystemExit(main())
