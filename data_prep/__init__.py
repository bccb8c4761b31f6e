"""Dataset preparation: turn public annotation formats into videofocus manifests.

Every converter is one module here, reached as ``videofocus prepare <name> ...``. A converter
module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code), and its
docstring is the command's help: the first paragraph says what it reads (``videofocus prepare
--help`` lists it from ``GROUPS`` in :mod:`videofocus.cli`, which imports no converter; a test
keeps the two equal), the rest lists the files it writes. Nothing here imports a converter
before it is asked for.
"""

from __future__ import annotations

#: ``videofocus prepare <name>`` -> module implementing it.
CONVERTERS: dict[str, str] = {
    "activitynet": "videofocus.data_prep.activitynet",
    "kinetics": "videofocus.data_prep.kinetics",
    "minikinetics": "videofocus.data_prep.minikinetics",
    "sthv2": "videofocus.data_prep.sthv2",
    "fcvid": "videofocus.data_prep.fcvid",
    "list": "videofocus.data_prep.lists",
    "folder": "videofocus.data_prep.folder",
    "reencode": "videofocus.data_prep.reencode",
    "synthetic": "videofocus.data_prep.synthetic",
}
