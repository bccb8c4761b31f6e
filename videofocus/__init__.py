"""videofocus: adaptive video recognition.

A light global CNN glances at every sampled frame, a recurrent policy trained with reinforcement
learning chooses where, how sharply and whether to look closely, and a high-capacity CNN sees only
the chosen glimpses. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
