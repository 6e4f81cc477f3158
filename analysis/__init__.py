"""Tidy results → curves, sensitivity metrics, statistics, tables and the report. No Ray, no torch."""
