"""Project.load: designs, SQL, dependencies and the DAG, with every problem located."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError, ProjectError, SelectionError
from conveyor.project import Project

ProjectFactory = Callable[..., Path]

ALL = [
    "shop.customers",
    "shop.orders",
    "shop.products",
    "mart.customer_totals",
    "mart.top_customers",
    "mart.report",
]


def load_problems(make_project: ProjectFactory, **kwargs: object) -> list[ConveyorError]:
    root = make_project(**kwargs)
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    assert info.value.exit_code == 2
    assert info.value.render() == "\n".join(p.render() for p in info.value.problems)
    return list(info.value.problems)


def one_problem(make_project: ProjectFactory, **kwargs: object) -> ConveyorError:
    problems = load_problems(make_project, **kwargs)
    assert len(problems) == 1, [p.render() for p in problems]
    return problems[0]


def test_fixture_project_loads(project_dir: Path) -> None:
    project = Project.load(project_dir)
    assert project.dag.order() == ALL
    kinds = {name: relation.kind for name, relation in project.relations.items()}
    assert kinds == {
        "shop.customers": "source",
        "shop.orders": "source",
        "shop.products": "source",
        "mart.customer_totals": "ctas",
        "mart.top_customers": "ctas",
        "mart.report": "view",
    }
    deps = {name: sorted(relation.dependencies) for name, relation in project.relations.items()}
    assert deps["mart.customer_totals"] == ["shop.customers", "shop.orders"]
    assert deps["mart.top_customers"] == ["mart.customer_totals"]  # unqualified, own schema
    assert deps["mart.report"] == ["mart.top_customers"]
    assert project.dag.levels() == {
        "shop.customers": 0,
        "shop.orders": 0,
        "shop.products": 0,
        "mart.customer_totals": 1,
        "mart.top_customers": 2,
        "mart.report": 3,
    }
    assert project.relations["shop.orders"].source == "shop"
    assert project.upstream_table(project.relations["shop.orders"]) == ("main", "orders")


def test_several_broken_files_give_several_problems(make_project: ProjectFactory) -> None:
    problems = load_problems(
        make_project,
        designs={
            "mart/a.yaml": "name: mart.a\nkind: ctas\nbogus: 1\n",
            "mart/a.sql": "SELECT 1 AS x\n",
            "mart/b.yaml": "name: mart.b\nkind: [\n",
        },
    )
    found = sorted((p.code, str(p.location)) for p in problems)
    assert found == [("unknown-key", "schemas/mart/a.yaml:3"), ("yaml-syntax", "schemas/mart/b.yaml:3:1")]


def test_problems_of_every_phase_are_collected(make_project: ProjectFactory) -> None:
    problems = load_problems(
        make_project,
        designs={
            "mart/a.yaml": "name: mart.wrong\nkind: ctas\n",
            "mart/a.sql": "SELECT 1 AS x\n",
            "mart/b.yaml": "name: mart.b\nkind: ctas\n",
            "mart/b.sql": "SELECT FROM WHERE\n",
            "mart/c.yaml": "name: mart.c\nkind: view\n",
            "mart/c.sql": "SELECT * FROM shop.nope\n",
            "mart/orphan.sql": "SELECT 1\n",
        },
    )
    codes = sorted(p.code for p in problems)
    assert codes == ["missing-dependency", "name-mismatch", "sql-parse", "sql-without-design"]


def test_name_mismatch_points_at_the_name_line(make_project: ProjectFactory) -> None:
    problem = one_problem(
        make_project,
        designs={"mart/a.yaml": "kind: ctas\ndescription: x\nname: mart.b\n", "mart/a.sql": "SELECT 1 AS x\n"},
    )
    assert problem.code == "name-mismatch"
    assert str(problem.location) == "schemas/mart/a.yaml:3"
    assert '"mart.b"' in problem.message and '"mart.a"' in problem.message


@pytest.mark.parametrize(
    ("sql", "line"),
    [
        ("SELECT a,\n  b\nFROM shop.orders\nWHERE (a = 1\n", 4),
        ("SELECT a\nFROM shop.orders\nWHERE a = = 1\n", 3),
        ("SELECT a\nFROM shop.orders o\n  JOIN JOIN shop.customers c\n", 3),
        ("SELECT 'unterminated\nFROM shop.orders\n", 1),
        ("SELECT 1 AS x;\n\nSELECT 2 AS y\n", 3),
        ("\n\nDELETE FROM shop.orders\n", 3),
    ],
)
def test_sql_that_does_not_parse_is_located(make_project: ProjectFactory, sql: str, line: int) -> None:
    problem = one_problem(make_project, designs={"mart/bad.yaml": "name: mart.bad\nkind: ctas\n", "mart/bad.sql": sql})
    assert problem.code == "sql-parse"
    assert problem.location is not None
    assert str(problem.location.path) == "schemas/mart/bad.sql"
    assert problem.location.line == line
    assert problem.location.column is not None and problem.location.column >= 1
    assert str(problem.location) == f"schemas/mart/bad.sql:{line}:{problem.location.column}"
    assert '"mart.bad"' in problem.message


def test_missing_dependency_has_did_you_mean_and_sql_position(make_project: ProjectFactory) -> None:
    sql = "SELECT o.id\nFROM shop.orders AS o\n  JOIN shop.custmers AS c ON c.id = o.customer_id\n"
    problem = one_problem(make_project, designs={"mart/a.yaml": "name: mart.a\nkind: ctas\n", "mart/a.sql": sql})
    assert problem.code == "missing-dependency"
    assert str(problem.location) == "schemas/mart/a.sql:3:8"
    assert '"shop.custmers"' in problem.message
    assert 'Did you mean "shop.customers"?' in problem.message


def test_missing_unqualified_dependency_suggests_the_qualified_name(make_project: ProjectFactory) -> None:
    sql = "SELECT *\n\nFROM top_customer\n"
    problem = one_problem(make_project, designs={"mart/a.yaml": "name: mart.a\nkind: view\n", "mart/a.sql": sql})
    assert problem.code == "missing-dependency"
    assert str(problem.location) == "schemas/mart/a.sql:3:6"
    assert 'Did you mean "mart.top_customers"?' in problem.message


def test_depends_on_an_unknown_relation(make_project: ProjectFactory) -> None:
    design = "name: mart.a\nkind: ctas\ndepends_on:\n  - shop.orders\n  - shop.ordrs\n"
    problem = one_problem(make_project, designs={"mart/a.yaml": design, "mart/a.sql": "SELECT 1 AS x\n"})
    assert problem.code == "missing-dependency"
    assert str(problem.location) == "schemas/mart/a.yaml:5"
    assert 'Did you mean "shop.orders"?' in problem.message


def test_depends_on_adds_an_edge(make_project: ProjectFactory) -> None:
    design = "name: mart.a\nkind: ctas\ndepends_on: [mart.report]\n"
    project = Project.load(make_project(designs={"mart/a.yaml": design, "mart/a.sql": "SELECT 1 AS x\n"}))
    assert project.relations["mart.a"].dependencies == ["mart.report"]
    assert project.dag.levels()["mart.a"] == 4


def test_cycle_shows_the_whole_path(make_project: ProjectFactory) -> None:
    problem = one_problem(
        make_project,
        designs={
            "mart/a.yaml": "name: mart.a\nkind: ctas\n",
            "mart/a.sql": "SELECT * FROM mart.b\n",
            "mart/b.yaml": "name: mart.b\nkind: view\n",
            "mart/b.sql": "SELECT * FROM a\n",
        },
    )
    assert problem.code == "cycle"
    assert "mart.a -> mart.b -> mart.a" in problem.message
    assert problem.location is not None and str(problem.location.path) == "schemas/mart/a.sql"


def test_longer_cycle_lists_every_relation(make_project: ProjectFactory) -> None:
    problem = one_problem(
        make_project,
        designs={
            "mart/a.yaml": "name: mart.a\nkind: ctas\n",
            "mart/a.sql": "SELECT * FROM mart.c\n",
            "mart/b.yaml": "name: mart.b\nkind: view\n",
            "mart/b.sql": "SELECT * FROM mart.a\n",
            "mart/c.yaml": "name: mart.c\nkind: view\n",
            "mart/c.sql": "SELECT * FROM mart.b\n",
        },
    )
    assert problem.code == "cycle"
    assert "mart.a -> mart.b -> mart.c -> mart.a" in problem.message


def test_relation_reading_itself_is_a_cycle(make_project: ProjectFactory) -> None:
    problem = one_problem(
        make_project, designs={"mart/a.yaml": "name: mart.a\nkind: ctas\n", "mart/a.sql": "SELECT * FROM mart.a\n"}
    )
    assert problem.code == "cycle"
    assert "mart.a -> mart.a" in problem.message


@pytest.mark.parametrize(
    ("designs", "where", "fragment"),
    [
        ({"mart/a.yaml": "name: mart.a\nkind: source\n"}, "schemas/mart/a.yaml:2", "belongs to no source"),
        (
            {"shop/a.yaml": "name: shop.a\nkind: ctas\n", "shop/a.sql": "SELECT 1 AS x\n"},
            "schemas/shop/a.yaml:2",
            'is a ctas in the schema of source "shop"',
        ),
        ({"shop/v.yaml": "name: shop.v\nkind: view\n"}, "schemas/shop/v.yaml:2", "is a view"),
    ],
)
def test_wrong_schema_kind(make_project: ProjectFactory, designs: dict[str, str], where: str, fragment: str) -> None:
    problem = one_problem(make_project, designs=designs)
    assert problem.code == "wrong-schema-kind"
    assert str(problem.location) == where
    assert fragment in problem.message


def test_kind_defaults_to_ctas_outside_source_schemas(make_project: ProjectFactory) -> None:
    project = Project.load(make_project(designs={"mart/a.yaml": "name: mart.a\n", "mart/a.sql": "SELECT 1 AS x\n"}))
    assert project.relations["mart.a"].kind == "ctas"
    assert project.relations["shop.products"].kind == "source"


@pytest.mark.parametrize("kind", ["ctas", "view"])
def test_transformation_without_sql(make_project: ProjectFactory, kind: str) -> None:
    problem = one_problem(make_project, designs={"mart/a.yaml": f"name: mart.a\nkind: {kind}\n"})
    assert problem.code == "missing-sql"
    assert str(problem.location) == "schemas/mart/a.yaml"
    assert f'the {kind} "mart.a" has no SQL file' in problem.message
    assert "schemas/mart/a.sql" in (problem.hint or "")


def test_sql_without_design(make_project: ProjectFactory) -> None:
    problem = one_problem(make_project, designs={"mart/stray.sql": "SELECT 1 AS x\n"})
    assert problem.code == "sql-without-design"
    assert str(problem.location) == "schemas/mart/stray.sql"
    assert "schemas/mart/stray.yaml" in (problem.hint or "")


def _with_search_path(make_project: ProjectFactory, designs: dict[str, str], search_path: str) -> Project:
    root = make_project(designs=designs)
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + f"  search_path: {search_path}\n")
    return Project.load(root)


def test_search_path_resolves_unqualified_names(make_project: ProjectFactory) -> None:
    designs = {"mart/a.yaml": "name: mart.a\nkind: view\n", "mart/a.sql": "SELECT * FROM orders JOIN customers\n"}
    project = _with_search_path(make_project, designs, "[shop]")
    assert sorted(project.relations["mart.a"].dependencies) == ["shop.customers", "shop.orders"]


def test_own_schema_comes_before_the_search_path(make_project: ProjectFactory) -> None:
    designs = {
        "mart/orders.yaml": "name: mart.orders\nkind: view\n",
        "mart/orders.sql": "SELECT * FROM shop.orders\n",
        "mart/a.yaml": "name: mart.a\nkind: view\n",
        "mart/a.sql": "SELECT * FROM orders\n",
    }
    project = _with_search_path(make_project, designs, "[shop]")
    assert project.relations["mart.a"].dependencies == ["mart.orders"]


def test_search_path_in_order(make_project: ProjectFactory) -> None:
    designs = {
        "other/orders.yaml": "name: other.orders\nkind: view\n",
        "other/orders.sql": "SELECT * FROM shop.orders\n",
        "mart/a.yaml": "name: mart.a\nkind: view\n",
        "mart/a.sql": "SELECT * FROM orders\n",
    }
    assert _with_search_path(make_project, designs, "[other, shop]").relations["mart.a"].dependencies == [
        "other.orders"
    ]
    assert _with_search_path(make_project, designs, "[shop, other]").relations["mart.a"].dependencies == ["shop.orders"]


def test_without_search_path_an_unqualified_source_name_is_missing(make_project: ProjectFactory) -> None:
    problem = one_problem(
        make_project, designs={"mart/a.yaml": "name: mart.a\nkind: view\n", "mart/a.sql": "SELECT * FROM orders\n"}
    )
    assert problem.code == "missing-dependency"
    assert '"orders"' in problem.message


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ([], ALL),
        (
            ["+mart.report"],
            ["shop.customers", "shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report"],
        ),
        (["+mart.top_customers"], ["shop.customers", "shop.orders", "mart.customer_totals", "mart.top_customers"]),
        (["mart.customer_totals+"], ["mart.customer_totals", "mart.top_customers", "mart.report"]),
        (["shop.orders+"], ["shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report"]),
        (["mart"], ["mart.customer_totals", "mart.top_customers", "mart.report"]),
        (["mart.report", "shop.products"], ["shop.products", "mart.report"]),
        (["*.c*"], ["shop.customers", "mart.customer_totals"]),
    ],
)
def test_selection_in_execution_order(project_dir: Path, terms: list[str], expected: list[str]) -> None:
    project = Project.load(project_dir)
    assert [r.name for r in project.select(terms)] == expected


def test_unknown_selection_term(project_dir: Path) -> None:
    with pytest.raises(SelectionError) as info:
        Project.load(project_dir).select(["mart.reprt"])
    assert info.value.exit_code == 2
    assert 'Did you mean "mart.report"?' in info.value.message


def test_tag_selection(make_project: ProjectFactory) -> None:
    root = make_project(designs={"mart/report.yaml": "name: mart.report\nkind: view\ntags: [daily]\n"})
    assert [r.name for r in Project.load(root).select(["tag:daily"])] == ["mart.report"]


def test_unknown_required_term_is_a_project_problem(make_project: ProjectFactory) -> None:
    root = make_project()
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + "required: [mart.reprt]\n")
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    assert 'Did you mean "mart.report"?' in info.value.render()


def test_no_project_folder(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError) as info:
        Project.load(tmp_path)
    assert info.value.code == "no-project"
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("table", "expected"), [("customer", "shop.customers"), ("order", "shop.orders")])
def test_missing_unqualified_name_suggests_the_table_on_the_search_path(
    make_project: ProjectFactory, table: str, expected: str
) -> None:
    """`FROM customer` means shop.customers, not the longer name mart.customer_totals that shares more letters."""
    designs = {"mart/a.yaml": "name: mart.a\nkind: view\n", "mart/a.sql": f"SELECT *\nFROM {table}\n"}
    root = make_project(designs=designs)
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + "  search_path: [shop]\n")
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    [problem] = [p for p in info.value.problems if p.code == "missing-dependency"]
    assert f'Did you mean "{expected}"?' in problem.message
