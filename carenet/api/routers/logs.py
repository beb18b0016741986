"""``/v1/logs``: streamed uploads of interaction logs and side tables, stored on disk."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import uuid
from pathlib import Path as PathLib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from carenet.api.deps import Analyst, SettingsDep, StoreDep
from carenet.api.errors import ApiError, responses
from carenet.api.schemas import UploadList, UploadPublic

router = APIRouter(prefix="/v1/logs", tags=["logs"],
                   responses=responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 507))
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write errors meaning "no room": the disk is full, a quota or a file size limit is hit."""


@router.post("", status_code=201, response_model=UploadPublic,
             summary="Upload a log (CSV, gzip CSV, Parquet, JSON Lines) as the request body",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}}}}})
async def upload_log(
    request: Request, store: StoreDep, settings: SettingsDep, key: Analyst,
    name: Annotated[str, Query(min_length=1, max_length=200,
                               description="File name; its extension tells the format")
                    ] = "upload.csv",
) -> UploadPublic:
    """Stream the body to disk (never held in memory), refusing more than
    ``max_upload_bytes`` with 413; use the returned id in POST /v1/runs.

    ``curl --data-binary @calls.csv -H 'Content-Type: text/csv' '.../v1/logs?name=calls.csv'``
    """
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/"):
        raise ApiError(415, "unsupported-media-type",
                       "send the file as the raw request body (curl --data-binary @FILE), "
                       "not as a multipart form")
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too-large",
                       f"the upload is {int(declared):,} bytes; the limit is {limit:,}")
    safe = _NAME.sub("_", os.path.basename(name)).strip("._") or "upload.csv"
    upload_id = "u" + uuid.uuid4().hex[:16]
    folder = settings.upload_dir() / upload_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe
    digest = hashlib.sha256()
    size = 0
    try:
        try:
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, "too-large",
                                       f"the upload exceeds the limit of {limit:,} bytes")
                    digest.update(chunk)
                    f.write(chunk)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            raise ApiError(507, "insufficient-storage",
                           f"the server has no room for this upload ({size:,} bytes written "
                           f"when the disk refused more: {os.strerror(exc.errno or 0)}); "
                           "free space or delete old uploads (DELETE /v1/logs/{id})") from None
        if size == 0:
            raise ApiError(422, "empty-upload", "the request body is empty; send the file "
                           "as the body (curl --data-binary @FILE)")
    except BaseException:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
        raise
    row = store.add_upload(upload_id=upload_id, name=safe, path=str(path), size=size,
                           sha256=digest.hexdigest(), created_by=key.id)
    return UploadPublic.model_validate(row)


@router.delete("/{upload_id}", response_model=UploadPublic, summary="Delete an uploaded file")
def delete_log(upload_id: Annotated[str, Path(min_length=1, max_length=40)], store: StoreDep,
               key: Analyst) -> UploadPublic:
    """Remove the file from disk and forget it (runs already computed are unaffected)."""
    row = store.delete_upload(upload_id)
    path = PathLib(row["path"])
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the per-upload folder, if now empty
        path.parent.rmdir()
    return UploadPublic.model_validate(row)


@router.get("", response_model=UploadList, summary="Uploaded files, newest first")
def list_logs(store: StoreDep, key: Analyst,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> UploadList:
    """Every stored upload (id, name, size, checksum)."""
    return UploadList(items=[UploadPublic.model_validate(r)
                             for r in store.list_uploads(limit=limit)])
