"""Benchmarks that print ratios measured side by side in one run, closing on `name: value` lines."""
