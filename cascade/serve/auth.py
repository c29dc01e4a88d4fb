"""Server keys: who may call `cascade serve`. Not the vendors' keys, which never leave the server.

Keys come from `CASCADE_SERVER_KEYS` (comma-separated) and from a keys file (one a line; blank lines and lines
starting with `#` are skipped); with neither, the server needs no key (and binds to 127.0.0.1 unless told).
A request then carries `Authorization: Bearer <key>`, which is what the OpenAI clients send as their `api_key`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from cascade.errors import InvalidArgumentError

SERVER_KEYS_ENV = "CASCADE_SERVER_KEYS"


def load_server_keys(env_value: str | None, keys_file: Path | None = None) -> frozenset[str]:
    """The server keys from the variable's value and the file, together; empty when neither is given.

    A variable or a file that is given but holds no key is an error, not an open server.
    """
    keys: set[str] = set()
    if env_value is not None:
        found = {key.strip() for key in env_value.split(",")} - {""}
        if not found:
            raise InvalidArgumentError(f"{SERVER_KEYS_ENV} is set but holds no key (keys are comma-separated)")
        keys |= found
    if keys_file is not None:
        try:
            lines = keys_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise InvalidArgumentError(f"keys file {keys_file}: cannot read: {why}") from None
        found = {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
        if not found:
            raise InvalidArgumentError(f"keys file {keys_file} holds no key (one a line; # starts a comment)")
        keys |= found
    for key in keys:
        if any(c.isspace() for c in key) or not key.isprintable():
            raise InvalidArgumentError("a server key has a space or a control character in it: it cannot be sent")
    return frozenset(keys)


class BearerAuth:
    """Checks `Authorization: Bearer <key>` against the server keys, in constant time.

    Only SHA-256 digests of the keys are kept. A token is hashed and compared with every digest, so the time a
    check takes says neither which key matched nor how much of one did (digests all have the same length).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:
        return f"BearerAuth({len(self._digests)} keys)"

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this `Authorization` header may pass (any request, when no key is set)."""
        if not self._digests:
            return True
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        offered = _digest(token.strip())
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(offered, digest)
        return matched


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
