"""Dagster wiring for desist: assets, checks, resources, schedules and sensors."""
