"""Content: courses and their skills (items follow), with who may see and change them."""
