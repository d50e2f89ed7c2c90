"""A dbt project as Conveyor files: designs and SQL per model, source designs, tests, assertions.

The conversion is planned completely before anything is written (:func:`plan_import`):
every model's Jinja is resolved, and a model that refs a model which did not convert does
not convert either (the loop runs until nothing more drops out), so the files written always
form a project that validates. What did not convert is in the report with file:line and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from conveyor.dbtimport.dbtproject import IGNORED_CONFIG, SUPPORTED_CONFIG, ConfigValue, DbtProject, ModelFile, Spot
from conveyor.dbtimport.designs import column_design, design_yaml, qualified, source_design
from conveyor.dbtimport.generic import Disabled, TestNotConverted, convert_test
from conveyor.dbtimport.jinja import Call, NotConverted, Rendered, render, strip_leading_blank_lines
from conveyor.dbtimport.report import ConvertedModel, ImportReport, Item
from conveyor.design.models import TableDesign

#: dbt materialization -> (Conveyor kind, the caveat the report notes)
MATERIALIZED: dict[str, tuple[str, str | None]] = {
    "view": ("view", None),
    "table": ("ctas", None),
    "incremental": ("ctas", "incremental: built whole on every load, as dbt's --full-refresh builds it"),
    "ephemeral": ("view", "ephemeral: becomes a view (dbt inlines it as a CTE; the rows are the same)"),
    "materialized_view": ("ctas", "materialized_view: a table built on every load"),
}
_MODEL_KEYS = {"name", "description", "columns", "tests", "data_tests", "config", "docs", "meta", "access", "group"}


@dataclass
class _Model:
    file: ModelFile
    relation: str = ""
    kind: str = "view"
    materialized: str = "view"
    tags: list[str] = field(default_factory=list)
    problems: list[Item] = field(default_factory=list)
    rendered: Rendered | None = None
    disabled: bool = False


@dataclass
class Plan:
    """The files to write (relative path -> text) and the report."""

    report: ImportReport
    files: dict[str, str] = field(default_factory=dict)


class Importer:
    """One conversion; :meth:`plan` does it all."""

    def __init__(self, project: DbtProject, default_schema: str, report: ImportReport):
        self.project = project
        self.default_schema = default_schema
        self.report = report
        self.files: dict[str, str] = {}
        self.models: dict[str, _Model] = {}
        self.sources = {(s.source, s.name): s for s in project.sources}

    def plan(self) -> dict[str, str]:
        for spot, what, why in self.project.others:
            self.skip(spot, what, why)
        for file in self.project.models.values():
            self.models[file.name] = self._configure(file)
        self._check_names()
        self._resolve_all()
        for name in sorted(self.project.properties):
            if name not in self.models:
                self.skip(
                    self.project.properties[name].spot(), f"properties of {name}", "there is no model of that name"
                )
        for model in self.models.values():
            if not model.problems and not model.disabled:
                self._write_model(model)
            self.report.not_converted.extend(model.problems)
        for table in self.project.sources:
            self._write_source(table)
        for test_file, text in self.project.singular_tests:
            self._write_assertion(test_file, text)
        return self.files

    def skip(self, spot: Spot | str, what: str, why: str) -> None:
        self.report.not_converted.append(Item(str(spot), what, why))

    def note(self, spot: Spot | str, what: str, why: str) -> None:
        self.report.notes.append(Item(str(spot), what, why))

    # -- configuration and names

    def _configure(self, file: ModelFile) -> _Model:
        model = _Model(file)
        first = render(file.text, lambda call, line: "x")  # config() only; names are not known yet
        config = self.project.model_config(file)
        properties = self.project.properties.get(file.name)
        if properties is not None and isinstance(properties.data.get("config"), dict):
            for key, value in properties.data["config"].items():
                config[key] = ConfigValue(value, properties.spot("config", key))
        for key, value in first.config.items():
            config[key] = ConfigValue(value, Spot(file.file, first.config_line))
        what = f"model {file.name}"
        for key, item in config.items():
            if key not in SUPPORTED_CONFIG | IGNORED_CONFIG:
                model.problems.append(Item(str(item.spot), what, f"config {key} is not converted"))
        if "enabled" in config and config["enabled"].value is False:
            model.disabled = True
            self.note(config["enabled"].spot, what, "disabled (enabled: false): left out")
        materialized = str(config["materialized"].value) if "materialized" in config else "view"
        if materialized not in MATERIALIZED:
            spot = config["materialized"].spot
            model.problems.append(Item(str(spot), what, f"materialized: {materialized} is not converted"))
        else:
            model.kind, caveat = MATERIALIZED[materialized]
            if caveat and not model.disabled:
                self.note(config["materialized"].spot, what, caveat)
        model.materialized = materialized
        schema = str(config["schema"].value) if "schema" in config else self.default_schema
        table = str(config["alias"].value) if "alias" in config else file.name
        model.relation = f"{schema}.{table}"
        if "tags" in config:
            value = config["tags"].value
            model.tags = [str(t) for t in (value if isinstance(value, list) else [value])]
        return model

    def _check_names(self) -> None:
        source_schemas = {s.source for s in self.project.sources}
        seen: dict[str, str] = {}
        for model in self.models.values():
            if model.disabled:
                continue
            schema, table = model.relation.split(".", 1)
            what, spot = f"model {model.file.name}", Spot(model.file.file, 1)
            if "." in table or not schema or not table:
                model.problems.append(Item(str(spot), what, f'"{model.relation}" is not a schema.table name'))
            elif schema in source_schemas:
                model.problems.append(
                    Item(str(spot), what, f'its schema "{schema}" is a source\'s: Conveyor keeps source schemas apart')
                )
            elif model.relation in seen:
                model.problems.append(Item(str(spot), what, f"model {seen[model.relation]} is {model.relation} too"))
            else:
                seen[model.relation] = model.file.name

    def _resolve_all(self) -> None:
        """Render every model until no more drop out (a ref to a model that did not convert drops the referrer)."""
        changed = True
        while changed:
            changed = False
            for model in self.models.values():
                if model.problems or model.disabled:
                    continue
                model.rendered = render(model.file.text, self._resolver())
                if model.rendered.unsupported:
                    what = f"model {model.file.name}"
                    model.problems = [
                        Item(f"{model.file.file}:{u.line}", what, u.reason) for u in model.rendered.unsupported
                    ]
                    changed = True

    def _resolver(self) -> Callable[[Call, int], str]:
        return lambda call, line: self.resolve(call)

    def resolve(self, call: Call) -> str:
        """The relation a ``ref()`` or ``source()`` call names, or :class:`NotConverted`."""
        shown = f"{call.name}({', '.join(repr(a) for a in call.args)})"
        if call.kwargs or not all(isinstance(a, str) for a in call.args):
            raise NotConverted(f"{shown} with keyword or non-string arguments (versions) is not converted")
        if call.name == "source":
            if len(call.args) != 2 or tuple(call.args) not in self.sources:
                raise NotConverted(f"{shown}: no such source table")
            return qualified(*call.args)
        if call.name != "ref" or len(call.args) not in (1, 2):
            raise NotConverted(f"{shown} is not converted")
        if len(call.args) == 2 and call.args[0] != self.project.name:
            raise NotConverted(f"{shown}: models of package {call.args[0]} are not imported")
        target = self.models.get(call.args[-1])
        if target is None:
            raise NotConverted(f"{shown}: no such model")
        if target.disabled or target.problems:
            raise NotConverted(f"{shown}: model {call.args[-1]} is not converted")
        return qualified(*target.relation.split(".", 1))

    # -- files

    def _write_model(self, model: _Model) -> None:
        assert model.rendered is not None
        schema, table = model.relation.split(".", 1)
        what = f"model {model.file.name}"
        design: dict[str, Any] = {"name": model.relation, "kind": model.kind}
        properties = self.project.properties.get(model.file.name)
        if properties is not None:
            data = properties.data
            for key in data:
                if key not in _MODEL_KEYS:
                    self.skip(properties.spot(key), what, f"{key}: is not converted")
            self._describe(design, data.get("description"), properties.spot("description"), what)
            columns = data.get("columns") or []
            if columns:
                design["partial_columns"] = True
                design["columns"] = [
                    column_design(self, c, properties, ("columns", i), what, typed=False)
                    for i, c in enumerate(columns)
                    if isinstance(c, dict)
                ]
            tests = self.tests(data, properties, (), None, what)
            if tests:
                design["tests"] = tests
        if model.tags:
            design["tags"] = model.tags
        try:
            TableDesign.model_validate(design)
        except ValidationError as exc:
            self.skip(Spot(model.file.file, 1), what, f"Conveyor refuses its design: {exc.errors()[0]['msg']}")
            return
        header = f"imported from {model.file.file} by conveyor import-dbt"
        self.files[f"schemas/{schema}/{table}.yaml"] = design_yaml(design, header)
        sql = strip_leading_blank_lines(model.rendered.sql).rstrip() + "\n"
        self.files[f"schemas/{schema}/{table}.sql"] = f"-- {header}\n{sql}"
        self.report.models.append(ConvertedModel(model.file.name, model.relation, model.kind, model.materialized))

    def _describe(self, design: dict[str, Any], text: Any, spot: Spot, what: str) -> None:
        if text is None or str(text).strip() == "":
            return
        if "{{" in str(text) or "{%" in str(text):
            self.skip(spot, what, "a description with Jinja (doc blocks) is left out")
            return
        design["description"] = str(text).strip()

    def tests(
        self, data: dict[str, Any], entry: Any, loc: tuple[str | int, ...], column: str | None, what: str
    ) -> list[Any]:
        """The converted tests of a model, a source table or a column (``loc`` leads to it in ``entry``)."""
        key = "data_tests" if "data_tests" in data else "tests"
        converted: list[Any] = []
        for index, test in enumerate(data.get(key) or []):
            spot = entry.spot(*loc, key, index)
            try:
                converted.append(convert_test(test, column, self.resolve))
            except Disabled:
                self.note(spot, f"test of {what}", "disabled (enabled: false): left out")
            except TestNotConverted as exc:
                self.skip(spot, f"test {_test_name(test)} of {what}" + (f".{column}" if column else ""), str(exc))
        self.report.tests += len(converted)
        return converted

    def _write_source(self, table: Any) -> None:
        what = f"source {table.source}.{table.name}"
        design = source_design(self, table, what)
        if design is None:
            return
        try:
            TableDesign.model_validate(design)
        except ValidationError as exc:
            self.skip(table.entry.spot(), what, f"Conveyor refuses its design: {exc.errors()[0]['msg']}")
            return
        header = f"imported from source {table.source}.{table.name} ({table.entry.doc.display}) by conveyor import-dbt"
        self.files[f"schemas/{table.source}/{table.name}.yaml"] = design_yaml(design, header)
        self.report.sources.append(design["name"])

    def _write_assertion(self, file: str, text: str) -> None:
        name = file.rsplit("/", 1)[-1].removesuffix(".sql")
        what = f"singular test {name}"
        if re.search(r"\{%-?\s*test\b", text):
            self.skip(f"{file}:1", f"generic test definition in {file}", "custom generic tests are not converted")
            return
        rendered = render(text, lambda call, line: self.resolve(call))
        for piece in rendered.unsupported:
            self.skip(f"{file}:{piece.line}", what, piece.reason)
        severity = rendered.config.pop("severity", None)
        for key in rendered.config:
            self.skip(f"{file}:{rendered.config_line}", what, f"config {key} of a singular test is not converted")
        if severity is not None and str(severity).lower() not in ("warn", "error"):
            self.skip(f"{file}:{rendered.config_line}", what, f'severity "{severity}" is neither warn nor error')
            return
        target = f"tests/{name}.sql"
        if rendered.unsupported or rendered.config:
            return
        if target in self.files:
            self.skip(f"{file}:1", what, f"another singular test is also {target}")
            return
        sql = strip_leading_blank_lines(rendered.sql).rstrip() + "\n"
        self.files[target] = f"-- imported from {file} by conveyor import-dbt: selects the rows that fail\n{sql}"
        if severity is not None and str(severity).lower() == "warn":
            self.files[f"tests/{name}.yaml"] = f"# imported from {file} by conveyor import-dbt\nseverity: warn\n"
        self.report.assertions.append(target)


def _test_name(test: Any) -> str:
    if isinstance(test, dict) and len(test) == 1:
        return str(next(iter(test)))
    return str(test)
