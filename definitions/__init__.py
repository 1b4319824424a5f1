"""Definitions: the plan, units, calendar and rubrics as data, with their loader, schema and importer."""
