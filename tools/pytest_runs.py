"""Tell a whole test tier's run from a partial one, for the nox sessions that record coverage.

The `coverage` session combines the unit, integration and contracts data files and fails under
95 %. A developer's one-test run (`./noxw -s integration -- tests/integration/test_x.py -k y`,
`-- --lf`, `-- -x`) measures a sliver of the code; had it written the tier's data file, the
next `coverage` would combine that sliver and fail for no fault of the code. So only a run of
the whole tier writes `reports/coverage/.coverage.<tier>`; a partial run writes its data under
`reports/coverage/partial/`, where `coverage` never looks.

A run counts as whole only when every argument is one this module knows cannot narrow the
selection or stop early (output, ordering, workers, snapshot updates). Anything else, a test
path, `-k`, `-m`, `--lf`, `-x`, `--maxfail`, an option this module does not know, makes the
run partial: a wrong "partial" costs a re-run, a wrong "whole" a false red gate.
"""

from __future__ import annotations

from collections.abc import Sequence

# Options that take their value as the next argument when not written `--opt=value`.
_NEUTRAL_WITH_VALUE = frozenset(
    {"-n", "--numprocesses", "-p", "--tb", "-r", "--durations", "-W", "--color", "--dist"}
)
# Options that change how a run looks or is scheduled, never which tests run to the end.
_NEUTRAL_FLAGS = frozenset(
    {
        "-v",
        "-vv",
        "-vvv",
        "-q",
        "-qq",
        "-s",
        "-l",
        "--showlocals",
        "--no-header",
        "--no-summary",
        "--snapshot-update",
        "--snapshot-details",
        "--randomly-dont-reorganize",
        "--strict-markers",
    }
)
_NEUTRAL_PREFIXES = (
    "--randomly-seed=",
    "--numprocesses=",
    "--tb=",
    "--durations=",
    "--color=",
    "--dist=",
    "-n",  # -n2, -nauto
    "-W",
    "-r",
)


def is_whole_tier(args: Sequence[str]) -> bool:
    """True when pytest `args` (a session's posargs) run the whole tier to the end."""
    remaining = iter(args)
    for arg in remaining:
        if arg in _NEUTRAL_FLAGS:
            continue
        if arg in _NEUTRAL_WITH_VALUE:
            if next(remaining, None) is None:
                return False  # a dangling option: pytest will refuse it anyway
            continue
        if arg == "--randomly-seed":
            if next(remaining, None) is None:
                return False
            continue
        if arg.startswith(_NEUTRAL_PREFIXES):
            continue
        return False
    return True
