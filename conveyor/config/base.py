"""What every configuration model shares."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StrictModel(BaseModel):
    """A model that rejects unknown keys (so typos are caught with "did you mean")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
