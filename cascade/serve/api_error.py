"""The server's error reply, in OpenAI's shape, shared by the request checks, the limits and the routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DEFAULT_TYPE = {401: "authentication_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error"}


class APIError(Exception):
    """An error reply of the server, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

    Raised inside the app and turned into its response there (or, once a stream has started, into its last
    event); it never reaches a library caller.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_ or _DEFAULT_TYPE.get(status, "invalid_request_error")
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return {"error": {**error, **self.extra}}


def bad_request(message: str, param: str | None, code: str = "invalid_request") -> APIError:
    """400: the request cannot be answered as sent; `param` names the field."""
    return APIError(400, message, param=param, code=code)
