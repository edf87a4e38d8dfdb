"""`python -m app …` is the same as the `petseg` console script."""

from app.cli import main

raise SystemExit(main())
