"""The WSGI entry point for a production server: `gunicorn app.wsgi:application`.

Configuration comes from the environment (app.settings), as for every other entry point.
Building the application neither connects to the database nor migrates: run `cchc init`
before starting the workers.
"""

from __future__ import annotations

from app import create_app

application = create_app()
