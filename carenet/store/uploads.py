"""Uploaded logs: their rows (name, path, size, checksum, who uploaded them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from carenet.errors import RunNotFoundError
from carenet.store.pool import StoreBase, now_iso
from carenet.store.schema import uploads


class UploadRegistry(StoreBase):
    """The uploaded logs of the store (the files live under the data home)."""

    # ------------------------------------------------------------------ uploads
    def add_upload(self, *, upload_id: str, name: str, path: str, size: int, sha256: str,
                   created_by: str | None) -> dict[str, Any]:
        """Register a stored upload."""
        row = {"id": upload_id, "name": name, "path": path, "bytes": size, "sha256": sha256,
               "created": now_iso(), "created_by": created_by}
        with self.engine.begin() as conn:
            conn.execute(insert(uploads).values(**row))
        return row

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """One upload's row; unknown ids raise :class:`RunNotFoundError`."""
        with self.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)
                               ).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no uploaded log {upload_id!r}")
        return dict(row)

    def delete_upload(self, upload_id: str) -> dict[str, Any]:
        """Forget an upload (the caller removes its file); returns its row."""
        row = self.get_upload(upload_id)
        with self.engine.begin() as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        return row

    def list_uploads(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Uploads, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(uploads).order_by(uploads.c.created.desc())
                                .limit(limit)).mappings().all()
        return [dict(r) for r in rows]
