"""Prompt contracts: every rendered template and request body (syrupy snapshots), and how the
OpenAI-compatible client reacts to what comes back (respx in strict mode, no network)."""
