"""``/v1/keys``: API key management (admin keys only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from carenet.api.deps import Admin, StoreDep
from carenet.api.errors import responses
from carenet.api.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic

router = APIRouter(prefix="/v1/keys", tags=["keys"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429))


@router.get("", response_model=KeyList, summary="Every API key (never the secrets)")
def list_keys(store: StoreDep, key: Admin) -> KeyList:
    """Ids, names, roles, creation and revocation times."""
    return KeyList(items=[KeyPublic.model_validate(k) for k in store.list_keys()])


@router.post("", status_code=201, response_model=KeyCreated, summary="Create an API key")
def create_key(body: KeyCreate, store: StoreDep, key: Admin) -> KeyCreated:
    """The secret is in this response only; the store keeps its hash."""
    info, token = store.create_key(body.role, body.name)
    row = next(k for k in store.list_keys() if k["id"] == info.id)
    return KeyCreated(**row, key=token)


@router.delete("/{key_id}", response_model=KeyPublic, summary="Revoke an API key")
def revoke_key(key_id: Annotated[str, Path(min_length=1, max_length=32)], store: StoreDep,
               key: Admin) -> KeyPublic:
    """The key stops working (within the key cache time in running servers)."""
    return KeyPublic.model_validate(store.revoke_key(key_id))
