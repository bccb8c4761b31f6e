"""``python -m videofocus ...``: the ``videofocus`` command."""

import sys

from videofocus.cli import main

sys.exit(main())
