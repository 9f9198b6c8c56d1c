"""Learning: enrolments, practice sessions, attempts, scoring and per-skill progress.

The adaptive engine (`app.adaptive`) decides; this package stores its state, serves items and
records attempts, each attempt in one transaction with the estimate and calibration it moves.
"""
