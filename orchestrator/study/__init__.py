"""The study file: its schema, reading it, the checks before anything runs, and the trials it plans."""
