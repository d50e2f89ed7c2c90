"""Pipeline definitions from conveyor.yaml (``pipelines:``) and ``pipelines/<name>.yaml``.

Both get the same line-numbered validation as every other project file. A definition also
has to fit the project: its environments must exist and its selection must match something.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.config.pipelines import PipelineConfig
from conveyor.config.yamlfile import YamlDoc, load_yaml, validate
from conveyor.errors import ConfigError, ConveyorError, Location, ProjectError, SelectionError, UserError, did_you_mean
from conveyor.graph.selection import select
from conveyor.project import Project

PIPELINES_DIR = "pipelines"


@dataclass(frozen=True)
class Pipeline:
    """A pipeline definition and where it was written."""

    name: str
    config: PipelineConfig
    doc: YamlDoc
    loc: tuple[str | int, ...]

    def location(self, *key: str | int) -> Location:
        return self.doc.location((*self.loc, *key))

    @property
    def environments(self) -> list[str]:
        """The environments it loads, primary first."""
        envs = self.config.environments
        return [envs.primary] + ([envs.secondary] if envs.secondary else [])

    def definition(self) -> dict[str, Any]:
        """The definition as JSON-ready data (stored when the pipeline is installed)."""
        return self.config.model_dump(mode="json")


def load_pipelines(project: Project) -> dict[str, Pipeline]:
    """Every pipeline of the project, checked; raises ``ProjectError`` listing every problem."""
    found: dict[str, Pipeline] = {
        name: Pipeline(name, config, project.settings_doc, ("pipelines", name))
        for name, config in project.settings.pipelines.items()
    }
    problems: list[ConveyorError] = []
    for path in sorted((project.root / PIPELINES_DIR).glob("*.y*ml")):
        try:
            pipeline = _load_file(project, path)
        except ProjectError as exc:
            problems.extend(exc.problems)
            continue
        except ConveyorError as exc:
            problems.append(exc)
            continue
        if pipeline.name in found:
            problems.append(
                ConfigError(
                    f'pipeline "{pipeline.name}" is defined twice (here and in conveyor.yaml).',
                    location=pipeline.location(),
                    hint="Keep one definition.",
                    code="duplicate-pipeline",
                )
            )
        found[pipeline.name] = pipeline
    for pipeline in found.values():
        problems.extend(_check(project, pipeline))
    if problems:
        raise ProjectError(problems)
    return found


def _load_file(project: Project, path: Path) -> Pipeline:
    display = str(path.relative_to(project.root))
    doc = load_yaml(path, display)
    config = validate(PipelineConfig, doc, "pipeline definition")
    return Pipeline(path.stem, config, doc, ())


def _check(project: Project, pipeline: Pipeline) -> list[ConveyorError]:
    problems: list[ConveyorError] = []
    known = list(project.settings.environments)
    envs = pipeline.config.environments
    for key, name in (("primary", envs.primary), ("secondary", envs.secondary), ("scratch", envs.scratch)):
        if name is not None and name not in known:
            problems.append(
                ConfigError(
                    f'pipeline "{pipeline.name}" names environment "{name}", which is not defined.'
                    + did_you_mean(name, known),
                    location=pipeline.location("environments", key),
                    hint=f"Known environments: {', '.join(known)}.",
                    code="unknown-environment",
                )
            )
    if envs.secondary is not None and envs.secondary == envs.primary:
        problems.append(
            ConfigError(
                f'pipeline "{pipeline.name}" has the same primary and secondary environment.',
                location=pipeline.location("environments", "secondary"),
                code="invalid-value",
            )
        )
    for key in ("selection", "required"):
        for index, term in enumerate(getattr(pipeline.config, key)):
            try:
                select(project.dag, [term])
            except SelectionError as exc:
                problems.append(ConfigError(exc.message, location=pipeline.location(key, index), code="selection"))
    return problems


def get_pipeline(project: Project, name: str) -> Pipeline:
    """One pipeline by name; an unknown name is a user error with a did-you-mean."""
    pipelines = load_pipelines(project)
    if name not in pipelines:
        raise UserError(
            f'the project has no pipeline "{name}".' + did_you_mean(name, pipelines),
            hint=f"Pipelines: {', '.join(pipelines) or 'none'} (in conveyor.yaml or pipelines/*.yaml).",
        )
    return pipelines[name]


#: how a pipeline's file and its installed copy (the one the scheduler runs) compare
INSTALLED, CHANGED, NOT_INSTALLED, NOT_DEFINED = "installed", "changed since install", "not installed", "not defined"


def compare_installed(defined: Pipeline | None, installed: dict[str, Any] | None) -> str:
    """``INSTALLED`` when the scheduler's copy equals the file, else how they differ."""
    if installed is None:
        return NOT_INSTALLED
    if defined is None:
        return NOT_DEFINED
    return INSTALLED if defined.definition() == installed else CHANGED


def drift_note(name: str, state: str) -> str | None:
    """What a person should know about a pipeline whose file and installed copy differ."""
    if state == CHANGED:
        return (
            f'pipeline "{name}" changed since it was installed: scheduled runs use the installed copy until '
            f'"conveyor pipeline install {name}".'
        )
    if state == NOT_DEFINED:
        return f'pipeline "{name}" is installed but no longer defined: "conveyor pipeline remove {name}" removes it.'
    if state == NOT_INSTALLED:
        return f'pipeline "{name}" is defined but not installed: "conveyor pipeline install {name}" schedules it.'
    return None


def installed_pipeline(project: Project, name: str) -> tuple[Pipeline, str]:
    """The installed copy of pipeline ``name`` (what the scheduler runs), and how it compares
    with the file (see :func:`compare_installed`); a pipeline that is not installed runs from
    its file (``NOT_INSTALLED``)."""
    from conveyor.runctx import open_tracking

    with open_tracking(project) as store:
        row = next((p for p in store.list_pipelines() if p.name == name), None)
    if row is None:
        return get_pipeline(project, name), NOT_INSTALLED
    defined = load_pipelines(project).get(name)
    config = PipelineConfig.model_validate(row.definition)
    doc, loc = (defined.doc, defined.loc) if defined is not None else (project.settings_doc, ("pipelines", name))
    return Pipeline(name, config, doc, loc), compare_installed(defined, row.definition)


def open_for_run(path: Path | str) -> tuple[Project, list[ConveyorError]]:
    """The project a pipeline runs in, and why it did not load completely.

    A project with a broken file still runs its pipelines as far as it loaded, so that the
    failure is recorded, pings the dead-man switch and is notified (a validation pipeline
    reports it); a broken conveyor.yaml stays a plain error.
    """
    try:
        return Project.load(path), []
    except ProjectError as exc:
        loaded = Project.collect(path)
        if loaded.project is None:
            raise
        return loaded.project, list(exc.problems)
