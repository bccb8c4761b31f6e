"""``videofocus quickstart``: the whole pipeline on built-in data, ending in a report."""

from videofocus.quickstart.job import DEFAULT_CONFIG, NAMES, quickstart_config, run_quickstart

__all__ = ["DEFAULT_CONFIG", "NAMES", "quickstart_config", "run_quickstart"]
