"""Anonymisation: copy a database, or JSON log files, with every personal value replaced.

* `pseudonyms` — deterministic keyed pseudonyms (HMAC-SHA256 under ANONYMIZE_KEY, shaped by
  Faker): e-mails, names, IPs, opaque identifiers; free-text scrubbing of e-mail addresses
  and phone numbers.
* `policy` — the explicit rule for every column of every table (a test fails when a model
  gains a column without one).
* `database` — the copy: schema from the source, rows streamed through the policy.
* `logs` — the same for JSON log lines, plus removal of token-like strings.
"""
