"""JSON Schema of the project files, for editors (``conveyor schema``)."""

from __future__ import annotations

from typing import Any

from conveyor.config.settings import ProjectSettings
from conveyor.design.models import TableDesign


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of conveyor.yaml ("settings") and of table designs ("design")."""
    settings = ProjectSettings.model_json_schema(by_alias=True)
    settings["title"] = "conveyor.yaml"
    design = TableDesign.model_json_schema(by_alias=True)
    design["title"] = "Conveyor table design (schemas/<schema>/<table>.yaml)"
    for document in (settings, design):
        document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return {"settings": settings, "design": design}
