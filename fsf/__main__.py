"""`python -m fsf COMMAND ...`: the `fsf` command (fsf.cli)."""

import sys

from fsf.cli import main

sys.exit(main())
