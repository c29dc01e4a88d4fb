"""README.md lists every policy field: a field added to the models and not to the README fails here."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from cascade.policy import Policy

README = Path(__file__).resolve().parents[2] / "README.md"


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = prefix + name
        paths.append(path)
        args = typing.get_args(field.annotation)
        nested = [field.annotation, *args, *(a for arg in args for a in typing.get_args(arg))]
        for kind in nested:
            if isinstance(kind, type) and issubclass(kind, BaseModel) and not prefix.startswith(path):
                paths += [p for p in field_paths(kind, path + ".") if p not in paths]
    return paths


def test_every_policy_field_is_in_the_readme_table() -> None:
    section = README.read_text().split("<!-- policy-fields -->", 1)[1].split("</details>", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.M))
    # The policy judge takes the stage judge's keys; rate limits the same keys per vendor; tenant spend the
    # policy spend's: the table shows each set once.
    wanted = {
        p
        for p in field_paths(Policy)
        if not p.startswith(("judge.", "limits.spend.tenant.", "limits.rate.anthropic.", "limits.rate.google."))
    }
    assert sorted(wanted - listed) == []
