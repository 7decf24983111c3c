"""The base of the device's configuration sections that live beside their code (publish, trust, explain)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictSettings(BaseModel):
    """Unknown keys are errors, values are frozen, and ``inf``/``nan`` are refused by name: either would pass every
    ``gt``/``ge`` bound and fail only in service."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
