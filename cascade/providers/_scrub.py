"""Masking keys in the SDK exceptions that stay chained behind cascade's errors.

cascade chains an SDK's exception as the cause of its own (`raise ... from exc`, for debugging). That exception
and the ones chained to it keep what the SDK saw: the request with its `Authorization` or `x-goog-api-key`
header, the vendor's reply (which may echo the key back, as some gateways do) and the message built from it. So
before cascade raises, every exception in the chain has its arguments and attributes masked: strings and
JSON-like values through `redact`, and HTTP requests and responses (httpx2's, requests', aiohttp's) replaced by
copies whose key headers read `***` and whose other headers, URL and body are masked.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from cascade.errors import redact, redact_data

# Headers that carry a key or a session, whatever their value looks like.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "cookie", "set-cookie"}
)


def scrub_exception(exc: BaseException) -> None:
    """Mask keys in the exception and the exceptions chained to it, in place."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(_scrubbed(a) for a in current.args)
        for name, value in list(vars(current).items()):
            masked = _scrubbed(value)
            if masked is not value:
                with contextlib.suppress(AttributeError):  # read-only: the object behind it cannot be swapped
                    setattr(current, name, masked)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def _scrubbed(value: Any) -> Any:
    """The value with keys masked: the same object when there is nothing to mask in it."""
    if isinstance(value, str):
        masked = redact(value)
        return value if masked == value else masked
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return value if redact(text) == text else redact(text).encode()
    if isinstance(value, dict | list | tuple):
        masked = redact_data(value)
        return value if masked == value else masked
    kind = type(value)
    module = kind.__module__.split(".", 1)[0]
    if module == "httpx2":
        if kind.__name__ == "Request":
            return _httpx_request(value)
        if kind.__name__ == "Response":
            return _httpx_response(value)
    if module == "requests" and kind.__name__ == "Response":
        return _requests_response(value)
    if module == "requests" and kind.__name__ == "PreparedRequest":
        return _requests_request(value)
    if module == "aiohttp" and kind.__name__ == "ClientResponse":
        return _aiohttp_response(value)
    return value


def _headers(headers: Any) -> dict[str, str]:
    return {k: "***" if k.lower() in _SECRET_HEADERS else redact(v) for k, v in headers.items()}


def _body(read: Any) -> bytes:
    """A body as masked bytes; empty when it was never read (a stream)."""
    try:
        content = read()
    except Exception:
        return b""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content or "")
    return redact(text).encode()


def _httpx_request(request: Any) -> Any:
    import httpx2

    return httpx2.Request(
        request.method,
        redact(str(request.url)),
        headers=_headers(request.headers),
        content=_body(lambda: request.content),
    )


def _httpx_response(response: Any) -> Any:
    import httpx2

    try:
        request = _httpx_request(response.request)
    except RuntimeError:  # a response built without a request
        request = None
    return httpx2.Response(
        response.status_code,
        headers=_headers(response.headers),
        content=_body(lambda: response.content),
        request=request,
    )


def _aiohttp_response(response: Any) -> Any:
    """An aiohttp response as an httpx2 one: its status, headers and request, without the body (aiohttp reads a
    body only by awaiting)."""
    import httpx2

    sent = response.request_info
    request = httpx2.Request(sent.method, redact(str(sent.url)), headers=_headers(sent.headers))
    return httpx2.Response(response.status, headers=_headers(response.headers), request=request)


def _requests_response(response: Any) -> Any:
    import requests
    from requests.structures import CaseInsensitiveDict

    copy = requests.Response()
    copy.status_code = response.status_code
    copy.reason = response.reason
    copy.url = redact(response.url or "")
    copy.encoding = response.encoding
    copy.headers = CaseInsensitiveDict(_headers(response.headers))
    copy.raw = io.BytesIO(_body(lambda: response.content))
    if response.request is not None:
        copy.request = _requests_request(response.request)
    return copy


def _requests_request(request: Any) -> Any:
    from requests.structures import CaseInsensitiveDict

    copy = request.copy()
    copy.headers = CaseInsensitiveDict(_headers(request.headers))
    copy.url = redact(request.url or "")
    return copy
