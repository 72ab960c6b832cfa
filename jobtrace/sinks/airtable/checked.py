"""A passing schema check, remembered on the host for a while, so that a job's start spends no request on it.

The schema check (:mod:`.check`) reads the base's metadata: one request of
the base's budget, spent when a job needs the budget most (at its start,
beside the run-ID lookup and the job's first records: with 4 requests a
second, a client run that ended in the job's first second then waited up to
half a second to reach Airtable). When the base fitted the mapping,
:func:`remember` keeps its metadata (table and field names, types and
choices; no token, no records) in the state directory
(:func:`jobtrace.state.state_dir`, ``checked/``), and :func:`remembered`
gives it back for ``REMEMBER_FOR`` seconds to a start with the same
endpoint, base and token (a file named by a hash of the three; another token,
say one Airtable would refuse, is checked against the base): the sink checks
the mapping against it without a request. A check the mapping does not pass
against the remembered metadata is made against the base.

A base changed in that time still shows: Airtable refuses the writes that do
not fit (422), the delivery engine sets the refused field or record aside in the
journal and logs it, and the sink then forgets the remembered check
(:func:`forget`), so the next start reads the base again. ``jobtrace check``
always reads the base.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from ...state import state_dir

__all__ = ["REMEMBER_FOR", "forget", "remember", "remembered"]

#: How long a passing check of a base is remembered on the host, in seconds.
REMEMBER_FOR = 3600.0


def _path(endpoint_url: str, base_id: str, api_key: str) -> Path:
    digest = hashlib.sha256(f"{endpoint_url.rstrip('/')}\n{base_id}\n{api_key}".encode()).hexdigest()[:32]
    return state_dir() / "checked" / f"{digest}.json"


def remembered(endpoint_url: str, base_id: str, api_key: str, max_age: float = REMEMBER_FOR) -> dict[str, Any] | None:
    """The metadata of a check of this base (with this token) that passed less than ``max_age`` seconds ago."""
    try:
        data = json.loads(_path(endpoint_url, base_id, api_key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("base_id") != base_id:
        return None
    checked_at = data.get("checked_at")
    if not isinstance(checked_at, (int, float)) or not 0 <= time.time() - checked_at <= max_age:
        return None
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("tables"), list):
        return None
    return meta


def remember(endpoint_url: str, base_id: str, api_key: str, metadata: dict[str, Any]) -> None:
    """Keep the metadata of a check of this base that passed (best effort: a failure only costs a request later)."""
    path = _path(endpoint_url, base_id, api_key)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"base_id": base_id, "checked_at": time.time(), "metadata": metadata}), "utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink()


def forget(endpoint_url: str, base_id: str, api_key: str) -> None:
    """Forget the remembered check of this base: the next start reads the base again."""
    with contextlib.suppress(OSError):
        _path(endpoint_url, base_id, api_key).unlink()
