"""No cassette holds a secret: no key header, no key query parameter, nothing key-shaped anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
ALL = sorted(CASSETTES.rglob("*.yaml"))
# libyaml's safe loader where PyYAML was built with it, as vcrpy does: this reads every cassette.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SECRET_HEADERS = {
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
}
KEY_LIKE = re.compile(
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|Bearer\s+\S+|"
    r"replay-(?:openai|anthropic|gemini)-key|demo-(?:openai|anthropic|gemini)-key|canary"
)


def test_there_are_cassettes_to_check() -> None:
    assert len(ALL) >= 30


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(CASSETTES)))
def test_cassette_holds_no_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not KEY_LIKE.search(text), f"key-like text in {path}"
    data = yaml.load(text, Loader=SAFE_LOADER)
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        assert not SECRET_HEADERS & {h.lower() for h in request.get("headers", {})}
        assert not SECRET_HEADERS & {h.lower() for h in response.get("headers", {})}
        assert not re.search(r"[?&]key=", request["uri"]), request["uri"]
        assert request["uri"].startswith(
            ("https://api.openai.com/", "https://api.anthropic.com/", "https://generativelanguage.googleapis.com/")
        ), request["uri"]
