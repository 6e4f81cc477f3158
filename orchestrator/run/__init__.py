"""The run directory: where everything of a study's runs is written, and the one runner of a trial."""
