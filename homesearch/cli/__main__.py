"""``python -m homesearch.cli``: the same as the ``homesearch`` command."""

import sys

from homesearch.cli.main import main

sys.exit(main())
