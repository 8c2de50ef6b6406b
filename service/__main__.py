"""python -m service …: the same as the motcua command."""

from service.cli import main

raise SystemExit(main())
