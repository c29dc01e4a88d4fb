"""Streaming a cascade: what `Cascade.stream` / `astream` yield, and the rule for what may be shown when.

A cascade cannot simply stream its first stage: the judge may reject that answer. So each stage's pieces go
through a `Showing`, which shows them at once or holds them, by mode:

- `buffered` (the default): a judged stage is streamed from its vendor but held until its judge accepts it, then
  released at once; a stage that is not judged (the last one), and the stage a routing rule sent the query to,
  stream straight through.
- `speculative`: every stage's pieces are shown at once while the judge runs; a rejection yields `Reset` and the
  next stage streams.
- `final`: only the last stage streams; an earlier stage that is accepted is shown whole once it is.

A stream that breaks, stalls or ends truncated is never a clean end: the call is a recorded error, what it showed is
withdrawn with `Reset`, and the query escalates as the policy says. Whatever is shown last before `Final` is the
accepted answer (or the best earlier one), whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cascade.providers.base import StreamPiece, TextPiece, ToolCallPiece
from cascade.result import CascadeResult

StreamMode = Literal["buffered", "speculative", "final"]
STREAM_MODES: tuple[StreamMode, ...] = ("buffered", "speculative", "final")


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More of the answer's text, from `stage`."""

    stage: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """More of a tool call: the call at `index` starts with its id and name; `arguments` is the next fragment of its
    JSON arguments (parsed and checked in the final result's `tool_calls`)."""

    stage: str
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Reset:
    """Everything shown since the last `Reset` is withdrawn: `stage`'s answer was rejected or its stream broke."""

    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class Final:
    """The end: the whole result (answer, trace, cost, confidence), as `run` returns it."""

    result: CascadeResult


StreamEvent = TextDelta | ToolCallDelta | Reset | Final


@dataclass
class Showing:
    """What a streaming query has shown and holds: fed by the driver (pieces of each call), told by the flow which
    answer is accepted or rejected. Pure bookkeeping: the driver hands `take()`'s events to the caller."""

    mode: StreamMode
    _events: list[StreamEvent] = field(default_factory=list)
    _live: dict[str, bool] = field(default_factory=dict)  # stage -> its pieces are shown as they come
    _pieces: dict[str, list[StreamPiece]] = field(default_factory=dict)  # stage -> the pieces of its answer
    _shown: str | None = None  # the stage whose pieces are on show

    def streams(self, last: bool) -> bool:
        """Whether a stage's answer call streams from its vendor (`final`: the last stage's only)."""
        return self.mode != "final" or last

    def begin(self, stage: str, *, live: bool) -> None:
        """A stage's answer call starts; `live`: its pieces are shown as they come."""
        self._live[stage] = live
        self._pieces[stage] = []

    def live_for(self, *, judged: bool, routed: bool) -> bool:
        """Whether a stage's pieces are shown as they come: in speculative mode always; in buffered mode when the
        stage is not judged or a routing rule chose it; in final mode only the last stage streams (not judged)."""
        if self.mode == "speculative":
            return True
        return not judged or (routed and self.mode == "buffered")

    def piece(self, stage: str, piece: StreamPiece) -> None:
        """A piece of the stage's answer arrived."""
        self._pieces.setdefault(stage, []).append(piece)
        if self._live.get(stage, False):
            self._show(stage, [piece])

    def failed(self, stage: str, reason: str) -> None:
        """The stage's call broke off (or its answer is unusable): withdraw what it showed, forget what it held."""
        self._withdraw(stage, reason)
        self._pieces[stage] = []

    def rejected(self, stage: str, reason: str) -> None:
        """The judge rejected the stage's answer: withdraw it if shown; keep its pieces (a best effort may use them)."""
        self._withdraw(stage, reason)

    def accepted(self, stage: str | None) -> None:
        """The query settled on `stage`'s answer (None: no answer): show it whole if it is not on show already."""
        if stage is None:
            self._withdraw(self._shown or "", "no stage answered")
            return
        if self._shown != stage:
            if self._shown is not None:
                self._withdraw(self._shown, f"the answer of {stage} was chosen")
            self._show(stage, _whole(self._pieces.get(stage, [])))

    def final(self, result: CascadeResult) -> None:
        self._events.append(Final(result))

    def take(self) -> list[StreamEvent]:
        """The events to hand to the caller now, in order."""
        events, self._events = self._events, []
        return events

    def _show(self, stage: str, pieces: list[StreamPiece]) -> None:
        if self._shown not in (None, stage):
            self._withdraw(self._shown, f"{stage} answers instead")
        self._shown = stage
        for piece in pieces:
            if isinstance(piece, TextPiece):
                self._events.append(TextDelta(stage, piece.text))
            else:
                self._events.append(ToolCallDelta(stage, piece.index, piece.id, piece.name, piece.arguments))

    def _withdraw(self, stage: str, reason: str) -> None:
        if self._shown is not None and self._shown == stage:
            self._events.append(Reset(stage, reason))
            self._shown = None


def _whole(pieces: list[StreamPiece]) -> list[StreamPiece]:
    """An answer's pieces as few as can be: its text in one piece, each tool call in one."""
    text = "".join(p.text for p in pieces if isinstance(p, TextPiece))
    calls: dict[int, ToolCallPiece] = {}
    for p in pieces:
        if isinstance(p, ToolCallPiece):
            seen = calls.get(p.index)
            calls[p.index] = (
                p
                if seen is None
                else ToolCallPiece(p.index, seen.id or p.id, seen.name or p.name, seen.arguments + p.arguments)
            )
    whole: list[StreamPiece] = [TextPiece(text)] if text else []
    return whole + [calls[i] for i in sorted(calls)]
