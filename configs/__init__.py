"""The built-in configs, installed as ``videofocus.configs``: every command that takes a config
accepts one of these by name (``videofocus train synthetic_tiny``) or any YAML file by path."""
