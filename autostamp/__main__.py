"""`python -m autostamp`: the same as the `autostamp` command."""

from autostamp.cli import main

main()
