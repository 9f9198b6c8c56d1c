"""Operator commands (`flask --app app <group> <command>`): db, seed, keys."""
