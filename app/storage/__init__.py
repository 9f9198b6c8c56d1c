"""Object storage: a local directory or any S3-compatible store, behind one interface."""
