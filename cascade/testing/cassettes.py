"""One vcrpy configuration for every cassette cascade writes or replays: tests, the demo, your own tests.

- Secrets are scrubbed in two layers: request headers and query parameters (`filter_headers`,
  `filter_query_parameters`) and identifying response headers (`before_record_response`); any key left in a
  header value or a response body (a vendor echoing it) is masked by `redact`. vcrpy logs each recorded response at
  INFO before any of that runs, so its cassette logger gets a filter that masks keys in the message.
- Requests match on method (case-insensitively: google-genai's aiohttp path records `post`), URI and body:
  without the body, a chat request that was never recorded would get the next recorded answer.
- Requests recorded against `FakeVendorServer` are rewritten to the vendor's real host, so synthesized
  cassettes replay exactly as real recordings would.

vcrpy is imported only by `vcr_instance`; building the config needs nothing but the standard library.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REAL_HOSTS = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
}

FILTERED_REQUEST_HEADERS = (
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "openai-organization",
    "openai-project",
)

# Response headers that identify an account or a request: dropped before a cassette is written.
SCRUBBED_RESPONSE_HEADERS = frozenset(
    {
        "set-cookie",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "x-request-id",
        "request-id",
        "cf-ray",
        "x-goog-api-key",
    }
)

_LOCAL = re.compile(r"^https?://(127\.0\.0\.1|localhost):\d+(/.*)$")


def method_ci(r1: Any, r2: Any) -> None:
    """vcrpy matcher: HTTP methods equal regardless of case."""
    assert r1.method.upper() == r2.method.upper()


def rewrite_to_vendor_host(request: Any) -> Any:
    """Make a request sent to the local fake server look like one sent to the real vendor; mask keys in headers."""
    from cascade.errors import redact
    from cascade.testing.fake_server import vendor_for_path

    match = _LOCAL.match(request.uri)
    if match:
        found = vendor_for_path(match.group(2))
        if found:
            request.uri = REAL_HOSTS[found[0]] + match.group(2)
            if "host" in request.headers:
                request.headers["host"] = REAL_HOSTS[found[0]].split("//", 1)[1]
    for name, value in list(request.headers.items()):
        if isinstance(value, str) and redact(value) != value:
            request.headers[name] = redact(value)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop cookies, organisation and project ids and request ids from a recorded response, and mask any key
    the body echoes (some vendors and gateways repeat the key they rejected)."""
    from cascade.errors import redact

    headers = response.get("headers") or {}
    for name in list(headers):
        if name.lower() in SCRUBBED_RESPONSE_HEADERS:
            del headers[name]
        else:  # a gateway may echo the key in a header of its own
            headers[name] = [redact(v) if isinstance(v, str) else v for v in headers[name]]
    body = response.get("body") or {}
    raw = body.get("string")
    if isinstance(raw, bytes | str):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        masked = redact(text)
        if masked != text:
            body["string"] = masked.encode() if isinstance(raw, bytes) else masked
            for name in list(headers):
                if name.lower() == "content-length":
                    headers[name] = [str(len(masked.encode()))]
    return response


class _RedactKeys(logging.Filter):
    """Masks keys in a log record's message (vcrpy logs responses before the cassette filters run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from cascade.errors import redact

        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def mask_vcr_logs() -> None:
    """Put the key-masking filter on vcrpy's cassette logger (once)."""
    logger = logging.getLogger("vcr.cassette")
    if not any(isinstance(f, _RedactKeys) for f in logger.filters):
        logger.addFilter(_RedactKeys())


def vcr_config() -> dict[str, Any]:
    """Keyword arguments for `vcr.VCR` (and pytest-recording's `vcr_config` fixture); masks keys in vcrpy's logs."""
    mask_vcr_logs()
    return {
        "filter_headers": list(FILTERED_REQUEST_HEADERS),
        "filter_query_parameters": ["key"],
        "match_on": ["method_ci", "scheme", "host", "port", "path", "query", "body"],
        "before_record_request": rewrite_to_vendor_host,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
    }


def vcr_instance(**overrides: Any) -> Any:
    """A configured `vcr.VCR` with the case-insensitive method matcher registered."""
    import vcr

    instance = vcr.VCR(**{**vcr_config(), **overrides})
    instance.register_matcher("method_ci", method_ci)
    return instance
