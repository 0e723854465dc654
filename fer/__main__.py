"""`python -m fer`: the command line of fer/cli.py."""

import sys

from fer.cli import main

if __name__ == "__main__":
    sys.exit(main())
