"""Contract tests: what the platform promises to the outside world, locked by snapshots."""
