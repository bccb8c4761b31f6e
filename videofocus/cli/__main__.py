"""``python -m videofocus.cli ...``: the ``videofocus`` command."""

import sys

from videofocus.cli import main

sys.exit(main())
