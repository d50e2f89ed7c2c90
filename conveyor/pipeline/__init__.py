"""Pipelines: definitions, runs, the scheduler, the dead-man switch and notifications."""
