"""`python -m gateway`: the command line; the leader starts its workers this way."""

import sys

from gateway.cli.main import main

sys.exit(main())
