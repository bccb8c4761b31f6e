"""Offline batch labeling: inputs, crash-safe results, shards, exporters, the job."""
