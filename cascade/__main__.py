"""`python -m cascade ...`: the `cascade` command, for environments where the console script is not on PATH."""

from cascade.cli import main

main()
