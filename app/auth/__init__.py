"""Authentication and authorisation: users, password hashing, signing keys, JWT access and
refresh tokens (rotated, single-use, grouped in families), and the role decorator."""
