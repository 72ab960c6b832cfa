"""Airtable's error responses, as an exception the request handler renders.

Airtable answers most errors with ``{"error": {"type": ..., "message": ...}}``
(pyairtable appends that dict to the ``requests.HTTPError`` it raises); a few
(unknown routes) with ``{"error": "NOT_FOUND"}``; the rate limit with
``{"errors": [{"error": "RATE_LIMIT_REACHED", "message": ...}]}``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error response: HTTP ``status`` and JSON ``body``."""

    def __init__(self, status: int, error_type: str, message: str | None = None) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.body: dict[str, Any]
        if message is None:
            self.body = {"error": error_type}
        else:
            self.body = {"error": {"type": error_type, "message": message}}

    @property
    def error_type(self) -> str:
        err = self.body.get("error")
        return err["type"] if isinstance(err, dict) else str(err)

    # Constructors for the errors the emulator returns, so wording stays in one place.

    @classmethod
    def authentication_required(cls) -> ApiError:
        return cls(401, "AUTHENTICATION_REQUIRED", "Authentication required")

    @classmethod
    def model_not_found(cls) -> ApiError:
        return cls(
            403,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
            "Invalid permissions, or the requested model was not found. Check that both your "
            "user and your token have the required permissions, and that the model names "
            "and/or ids are correct.",
        )

    @classmethod
    def not_found(cls) -> ApiError:
        return cls(404, "NOT_FOUND")

    @classmethod
    def record_not_found(cls, record_id: str) -> ApiError:
        return cls(404, "MODEL_ID_NOT_FOUND", f'Could not find a record with ID "{record_id}".')

    @classmethod
    def row_does_not_exist(cls, record_id: str) -> ApiError:
        return cls(422, "ROW_DOES_NOT_EXIST", f"Record ID {record_id} does not exist in this table")

    @classmethod
    def computed_field(cls, name: str) -> ApiError:
        return cls(
            422,
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{name}" cannot accept a value because the field is computed',
        )

    @classmethod
    def invalid_value(cls, name: str, detail: str = "") -> ApiError:
        msg = f'Field "{name}" cannot accept the provided value'
        return cls(422, "INVALID_VALUE_FOR_COLUMN", msg + (f": {detail}" if detail else ""))

    @classmethod
    def unknown_field(cls, name: str) -> ApiError:
        return cls(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')

    @classmethod
    def invalid_choice(cls, value: str) -> ApiError:
        return cls(
            422,
            "INVALID_MULTIPLE_CHOICE_OPTIONS",
            f'Insufficient permissions to create new select option ""{value}""',
        )

    @classmethod
    def invalid_formula(cls, detail: str) -> ApiError:
        return cls(
            422,
            "INVALID_FILTER_BY_FORMULA",
            f"The formula for filtering records is invalid: {detail}",
        )

    @classmethod
    def invalid_records(cls, message: str) -> ApiError:
        return cls(422, "INVALID_RECORDS", message)

    @classmethod
    def invalid_request(cls, message: str, error_type: str = "INVALID_REQUEST_UNKNOWN") -> ApiError:
        return cls(422, error_type, message)
