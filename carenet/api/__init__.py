"""The REST API (FastAPI) that CRM systems query."""
