"""Hypothesis strategies and settings shared by the adaptive-engine tests."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from app.adaptive.irt import A_MAX, A_MIN, B_MAX, B_MIN

# Modest example counts keep the unit tier fast; no deadline, because the first numpy call of a
# process can be slow and timing is never what these tests are about.
FAST = settings(max_examples=60, deadline=None)

discriminations = st.floats(min_value=A_MIN, max_value=A_MAX, allow_nan=False)
difficulties = st.floats(min_value=B_MIN, max_value=B_MAX, allow_nan=False)
abilities = st.floats(min_value=-6.0, max_value=6.0, allow_nan=False)
extreme_abilities = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False)
responses = st.tuples(discriminations, difficulties, st.booleans())
histories = st.lists(responses, max_size=25)
