"""`python -m bot`: the same as the `storebot` command (bot/cli.py)."""

import sys

from bot.cli import main

sys.exit(main())
