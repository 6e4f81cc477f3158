"""The study files that ship with decaylab (installed as package data, usable by name: `decaylab sweep digits`)."""
