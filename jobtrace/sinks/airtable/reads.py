"""BaseReader: every read of an Airtable base that is not a write, with one throttle, retry and error mapping.

What the ``jobtrace`` command, the schema check and the AirtableSink's reads
(``read``, ``read_client_runs``, the run ID lookup) ask of a base::

    reader = BaseReader(api_key, base_id, endpoint_url, budget_for(endpoint_url, base_id))
    reader.records("Job Tracking", formula=..., sort=["-Start Time"], max_records=20)
    reader.first("Job Tracking", formula)           # one record or None
    reader.client_runs("Client Run Tracking", "Run ID", "251005-210247")
    reader.metadata()                               # the metadata API's {"tables": [...]}
    reader.update_if("Job Tracking", record_id, change)   # read again, then update (or not)

- **one throttle**: every HTTP request (each page of a listing too) takes a slot
  of the base's shared :class:`~jobtrace.sinks.airtable.Budget` first, from
  jobtrace's share (``application=False``); a reader given ``slot_wait`` gives
  up when no slot frees up that soon (:data:`busy <jobtrace.delivery.airtable.ErrorKind>`);
- **one retry policy**: a 429 puts the base in the shared penalty box (every
  process waits it out) and is tried again up to ``max_rate_limited`` times;
  a 5xx, a timeout or a dropped connection is tried again up to ``attempts``
  times in all, after ``backoff`` seconds doubling up to a cap; a refused
  token, a missing base or table, a rejected query are not tried again;
- **one error mapping**: what still fails is an
  :class:`~jobtrace.delivery.airtable.AirtableError` (a ``SinkError``) from
  :func:`~jobtrace.delivery.airtable.airtable_error`, the one place that reads
  Airtable's answers. Its message never holds the token.

A ``BaseReader`` holds one HTTP session: use one per thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from pyairtable import Api, formulas
from requests.adapters import HTTPAdapter

from ...delivery.airtable import RATE_LIMIT_PENALTY, airtable_error, busy_error
from .budget import Budget
from .credentials import check_endpoint_url, clean_api_key

__all__ = ["DEFAULT_TIMEOUT", "BaseReader", "base_metadata"]

logger = logging.getLogger("jobtrace")

T = TypeVar("T")

#: (connect, read) timeouts of every request, in seconds.
DEFAULT_TIMEOUT = (5.0, 30.0)


def base_metadata(api: Api, base_id: str) -> dict[str, Any]:
    """The base's tables and fields in the metadata API's shape (``{"tables": [...]}``): one request."""
    schema = api.base(base_id).schema()
    dumped: dict[str, Any] = schema.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


class _NoSlot(Exception):
    """The budget had no slot within the wait: the request was not sent."""


class _SlotAdapter(HTTPAdapter):
    """Each request takes a slot of the budget first, held until its answer came back."""

    def __init__(self, budget: Budget, application: bool, wait: float | None) -> None:
        super().__init__()
        self.budget = budget
        self.application = application
        self.wait = wait

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        slot = self.budget.acquire(timeout=self.wait, application=self.application)
        if slot is None:
            raise _NoSlot()
        try:
            return super().send(request, *args, **kwargs)
        finally:
            self.budget.done(slot)


class BaseReader:
    """Reads of one base (and the single-record re-read + update of ``reap``/``close``), within its budget.

    Args:
        api_key: the token; used for requests only.
        base_id: the base (``app...``).
        endpoint_url: Airtable's API, or the emulator's.
        budget: the base's shared budget (``budget_for``); None: no slots taken (the caller holds one).
        application: draw from the whole budget (the application's share) rather than jobtrace's.
        rate_limit_penalty: how long the base is left alone after a 429 (Airtable: 30 s).
        max_rate_limited: how many 429s in a row one call waits out before it fails.
        attempts: how many times in all one call is sent while Airtable fails (5xx, no answer).
        backoff: (first, cap) seconds between those attempts, doubling.
        slot_wait: at most this long for a slot per request (None: as long as it takes).
        timeout: ``(connect, read)`` seconds per request.
    """

    def __init__(
        self,
        api_key: str,
        base_id: str,
        endpoint_url: str,
        budget: Budget | None,
        *,
        application: bool = False,
        rate_limit_penalty: float = RATE_LIMIT_PENALTY,
        max_rate_limited: int = 3,
        attempts: int = 3,
        backoff: tuple[float, float] = (0.25, 2.0),
        slot_wait: float | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        endpoint_url = check_endpoint_url(endpoint_url)
        # pyairtable annotates timeout as tuple[int, int]; requests takes floats. Its own retries are off.
        api = Api(clean_api_key(api_key), timeout=timeout, retry_strategy=False, endpoint_url=endpoint_url)  # type: ignore[arg-type]
        if budget is not None:
            api.session.mount(endpoint_url.rstrip("/") + "/", _SlotAdapter(budget, application, slot_wait))
        self._init(api, base_id, endpoint_url, budget, rate_limit_penalty, max_rate_limited, attempts, backoff)
        self._slot_wait = slot_wait

    @classmethod
    def over(cls, api: Api, base_id: str, endpoint_url: str | None = None) -> BaseReader:
        """A reader making its requests through ``api`` as it is: no budget, each call sent once."""
        reader = cls.__new__(cls)
        endpoint = endpoint_url or str(getattr(api, "endpoint_url", "") or "https://api.airtable.com")
        reader._init(api, base_id, endpoint, None, RATE_LIMIT_PENALTY, 0, 1, (0.0, 0.0))
        reader._slot_wait = None
        return reader

    def _init(
        self,
        api: Api,
        base_id: str,
        endpoint_url: str,
        budget: Budget | None,
        penalty: float,
        max_rate_limited: int,
        attempts: int,
        backoff: tuple[float, float],
    ) -> None:
        self._api = api
        self._base_id = base_id
        self._endpoint = endpoint_url
        self._budget = budget
        self._penalty = penalty
        self._max_rate_limited = max_rate_limited
        self._attempts = max(1, attempts)
        self._backoff = backoff

    @property
    def base_id(self) -> str:
        return self._base_id

    @property
    def api(self) -> Api:
        """The ``pyairtable.Api`` underneath (its requests take the budget's slots; no retries, no mapping)."""
        return self._api

    # -- the one policy ----------------------------------------------------------------------

    def run(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Call ``fn`` (requests through :attr:`api`) with the retry policy; failures as ``AirtableError``.

        ``idempotent=False`` (a create): tried again only after a 429 (Airtable applied nothing), never
        after an error that may have come after the change was made.
        """
        rate_limited = failures = 0
        while True:
            try:
                return fn()
            except _NoSlot:
                raise busy_error(self._base_id, self._slot_wait or 0.0) from None
            except requests.RequestException as exc:
                error = airtable_error(exc, self._base_id, self._endpoint)
                assert error is not None
            if error.kind == "rate_limited":
                if self._budget is not None:
                    self._budget.penalize(self._penalty)  # every process sharing the budget waits it out
                    logger.warning(
                        "jobtrace: Airtable's rate limit was hit on base %s; every process sharing its budget "
                        "waits %.0f s",
                        self._base_id,
                        self._penalty,
                    )
                if rate_limited >= self._max_rate_limited:
                    raise error from None
                rate_limited += 1
                if self._budget is None:
                    time.sleep(self._penalty)
                continue
            failures += 1
            if not (idempotent and error.kind in ("unavailable", "unreachable")) or failures >= self._attempts:
                raise error from None
            first, cap = self._backoff
            time.sleep(min(cap, first * 2 ** (failures - 1)))

    # -- the reads -----------------------------------------------------------------------------

    def records(
        self,
        table: str,
        *,
        formula: formulas.Formula | str | None = None,
        sort: Sequence[str] | None = None,
        max_records: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The records of ``table`` (``{"id", "createdTime", "fields"}``) matching ``formula``; one request per 100."""
        options: dict[str, Any] = {}
        if formula is not None:
            options["formula"] = formula
        if sort:
            options["sort"] = list(sort)
        if max_records is not None:
            options["max_records"] = max_records
        if fields is not None:
            options["fields"] = list(fields)
        found = self.run(lambda: self._api.table(self._base_id, table).all(**options))
        return [dict(r) for r in found]

    def first(
        self, table: str, formula: formulas.Formula | str | None = None, fields: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """The first record of ``table`` matching ``formula`` (any record without one), or None."""
        options: dict[str, Any] = {}
        if formula is not None:
            options["formula"] = formula
        if fields is not None:
            options["fields"] = list(fields)
        found = self.run(lambda: self._api.table(self._base_id, table).first(**options))
        return dict(found) if found is not None else None

    def get(self, table: str, record_id: str) -> dict[str, Any]:
        """One record by its Airtable ID."""
        return dict(self.run(lambda: self._api.table(self._base_id, table).get(record_id)))

    def client_runs(
        self, table: str, run_id_field: str, run_id: str, *, sort: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The fields of every client record of job run ``run_id`` (their run IDs start ``<run_id>-``)."""
        prefix = f"{run_id}-"
        formula = formulas.EQ(formulas.LEFT(formulas.Field(run_id_field), len(prefix)), prefix)
        return [dict(r["fields"]) for r in self.records(table, formula=formula, sort=sort)]

    def metadata(self) -> dict[str, Any]:
        """The base's tables and fields (the metadata API; needs the token's ``schema.bases:read`` scope)."""
        return self.run(lambda: base_metadata(self._api, self._base_id))

    # -- the one write: an update decided on a fresh read --------------------------------------

    def update_if(
        self, table: str, record_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Read the record again, ask ``change`` what to write (None: leave it alone), write it.

        Returns the fields read and the fields written (None when left alone).
        What ``reap`` and ``close`` do to end a run someone else may have ended meanwhile.
        """
        fresh: dict[str, Any] = dict(self.get(table, record_id)["fields"])
        update = change(fresh)
        if update is None:
            return fresh, None
        self.run(lambda: self._api.table(self._base_id, table).update(record_id, update))
        return fresh, update

    def __repr__(self) -> str:
        return f"<BaseReader base={self._base_id} endpoint={self._endpoint}>"
