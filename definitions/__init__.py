"""Definitions: the plan, units, calendar and rubrics as data, with loader and importer."""
