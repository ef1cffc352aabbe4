"""The ASGI application, for uvicorn: `uvicorn odeus_triggers.main:app`."""

from .app import create_app

app = create_app()
