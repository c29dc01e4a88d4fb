"""The structure every answer must fit: a support ticket's category and priority."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Category(StrEnum):
    billing = "billing"
    bug = "bug"
    account = "account"
    feature_request = "feature_request"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


class Ticket(BaseModel):
    """How to route a support ticket."""

    model_config = ConfigDict(extra="forbid")

    category: Category
    priority: Priority = Field(description="high: people cannot work, money or security at stake")
