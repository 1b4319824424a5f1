"""The domain: models, task lifecycle, the engine, schedules and evaluation. Never imports Flask."""
