"""Video ids as public datasets write them: YouTube ids behind the ``v_`` prefix.

ActivityNet videos are commonly stored as ``v_<youtube id>.mp4`` and BSN/BMN annotation files key
them as ``v_<youtube id>``, while the official ActivityNet JSON and its evaluator use the bare
11-character YouTube id. Converters and exporters normalise through :func:`bare_youtube_id`, so
every place agrees on one id per video.
"""

from __future__ import annotations

#: length of every YouTube video id (characters from ``[A-Za-z0-9_-]``)
YOUTUBE_ID_LENGTH = 11
#: what ActivityNet downloads and BSN/BMN annotations put before the YouTube id
VIDEO_PREFIX = "v_"


def bare_youtube_id(name: str) -> str:
    """``"v_abc-_123456"`` -> ``"abc-_123456"``: the ``v_`` prefix removed, once.

    A name of exactly 11 characters is returned unchanged even when it starts with ``v_``: it
    is a YouTube id itself (about one ActivityNet id in 4,000 starts with ``v_``, and its file
    is ``v_v_...``). Names without the prefix, and ``"v_"`` itself, are returned unchanged.
    """
    if name.startswith(VIDEO_PREFIX) and len(name) not in (len(VIDEO_PREFIX), YOUTUBE_ID_LENGTH):
        return name[len(VIDEO_PREFIX) :]
    return name
