"""Conveyor: extract, load, transform and schedule a data warehouse."""

__version__ = "0.1.0"
