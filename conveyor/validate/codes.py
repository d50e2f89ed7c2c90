"""Every problem code ``conveyor validate`` reports, with its usual severity, check and meaning.

docs/validate.md has the same table (a test keeps them in sync); JSON output and tests use
the codes, which never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Code:
    """What a code means and how serious it is."""

    severity: Severity
    check: str
    meaning: str


def _codes(*rows: tuple[str, Severity, str, str]) -> dict[str, Code]:
    return {code: Code(severity, check, meaning) for code, severity, check, meaning in rows}


CODES: dict[str, Code] = _codes(
    # ----------------------------------------------------------------- project files (Project.load)
    ("no-project", "error", "project", "There is no conveyor.yaml in the folder."),
    ("yaml-syntax", "error", "project", "A YAML file does not parse (indentation, a colon, a quote)."),
    ("duplicate-key", "error", "project", "A key appears twice in the same mapping."),
    (
        "yaml-aliases",
        "error",
        "project",
        "A YAML file's aliases expand to more than 100,000 values (nested anchors, a billion-laughs document).",
    ),
    (
        "yaml-nesting",
        "error",
        "project",
        "A YAML file nests collections more than 100 deep (a hostile or generated file).",
    ),
    ("unknown-key", "error", "project", 'A key the file format does not know (at any depth), with "did you mean".'),
    ("missing-key", "error", "project", "A required key is missing."),
    (
        "invalid-value",
        "error",
        "project",
        "A value has the wrong type or is out of range (e.g. an unknown column type, "
        "a duplicate column, an unknown default_environment).",
    ),
    ("config", "error", "project", "A file cannot be read, or is not a mapping."),
    ("name-mismatch", "error", "designs", "A design's name does not match its path schemas/<schema>/<table>.yaml."),
    ("wrong-schema-kind", "error", "designs", "A source table outside a source's schema, or a CTAS/view inside one."),
    ("missing-sql", "error", "designs", "A CTAS or view has no .sql file beside its design."),
    ("sql-without-design", "error", "designs", "A .sql file has no design beside it."),
    (
        "seed-csv",
        "error",
        "designs",
        "A seed's CSV file has a record or a value its design's type cannot hold exactly (named by file:line "
        "and column), or is not UTF-8 CSV.",
    ),
    (
        "seed-header",
        "error",
        "designs",
        "A seed's CSV header names a column the design lacks, or lacks one of the design's columns.",
    ),
    ("seed-missing", "error", "designs", "A seed's design has no CSV file."),
    (
        "seed-extract",
        "error",
        "designs",
        "A seed sets a job type other than arrow, or extract.condition, incremental, split_by, partitions or command.",
    ),
    ("sql-parse", "error", "sql", "The SQL does not parse, is empty, holds several statements or is not a SELECT."),
    (
        "sql-unparsed",
        "warning",
        "sql",
        "sqlglot cannot parse the SQL, which the warehouse may accept: it runs exactly as written and its "
        "dependencies come from depends_on only.",
    ),
    (
        "missing-dependency",
        "error",
        "dependencies",
        'The SQL or depends_on names a relation the project does not define, with "did you mean".',
    ),
    (
        "external-dependency",
        "error",
        "dependencies",
        "The SQL reads a table from a schema the project does not "
        "manage, and `external` in conveyor.yaml does not list it.",
    ),
    ("cycle", "error", "dependencies", "Relations depend on each other in a circle (the whole path is shown)."),
    ("dependency", "error", "dependencies", "The dependency graph cannot be built."),
    ("catalog-clash", "error", "project", "A DuckDB file is named like a schema, which makes schema.table ambiguous."),
    ("bad-required", "error", "project", "A `required` selection term matches no relation (e.g. an unknown tag)."),
    ("inline-password", "error", "project", "A connection string holds a password instead of a ${VAR} reference."),
    ("unset-env", "error", "sources", "A ${VAR} in a DSN or lake.path names an unset environment variable."),
    ("secret", "error", "sources", "A secret cannot be resolved."),
    ("bad-selection", "error", "project", "The selection given to validate matches nothing or is malformed."),
    (
        "credentials-file",
        "error",
        "project",
        "The credentials file is a folder or is not UTF-8 text.",
    ),
    (
        "lake-path",
        "error",
        "project",
        "The lake path is a file, lies under a file, or cannot be written; an s3:// location is malformed, or "
        "its bucket does not answer or take writes (tried before extracting).",
    ),
    (
        "warehouse-path",
        "error",
        "project",
        "A DuckDB environment's file is a folder, lies under a file, is not a DuckDB database, or cannot be written.",
    ),
    (
        "source-path",
        "error",
        "sources",
        "A SQLite source's file does not exist, is a folder or is not a SQLite database; a lake source's folder "
        "does not exist (checked before extracting).",
    ),
    (
        "tracking-path",
        "error",
        "project",
        "The SQLite tracking store is a folder, lies under a file, or is not SQLite.",
    ),
    # ----------------------------------------------------------------- designs
    (
        "view-column",
        "error",
        "designs",
        "A view's column has a type, not_null, skipped or identity; views carry only name and description.",
    ),
    ("missing-type", "error", "designs", "A loaded column of a source table has no type."),
    (
        "unknown-column",
        "error",
        "designs",
        "A key, split_by, incremental cursor or attribute names a column the "
        "design (or the query's select list) does not have.",
    ),
    ("skipped-column", "error", "designs", "A key, split_by, incremental cursor or attribute names a skipped column."),
    (
        "split-by-nullable",
        "warning",
        "designs",
        "extract.split_by names a column that may be NULL; the first partition reads all NULL keys.",
    ),
    (
        "split-by-type",
        "error",
        "designs",
        "extract.split_by names a column whose type cannot be split into ranges "
        "(integers, date, timestamp, uuid and text can).",
    ),
    ("identity-nullable", "error", "designs", "An identity column is not not_null."),
    (
        "type-unsupported",
        "error",
        "designs",
        "A column's type is one an environment's warehouse cannot hold (e.g. decimal(50,20) on DuckDB, which holds "
        "decimal(38,s) at most).",
    ),
    ("source-depends-on", "error", "designs", "A source table has depends_on (it is loaded, not built)."),
    ("source-partial-columns", "error", "designs", "A source table has partial_columns (it lists every column)."),
    ("test-unknown-column", "error", "designs", "A data test names a column its relation does not have."),
    (
        "test-unknown-relation",
        "error",
        "designs",
        "A relationships test refers to a relation the project does not have.",
    ),
    ("test-values-type", "error", "designs", "accepted_values lists a value that is not of the column's type."),
    ("test-bad-sql", "error", "designs", "A data test's where, expression or predicate is not a SQL expression."),
    (
        "test-misplaced",
        "error",
        "designs",
        "A data test is in the wrong place or names no column (row counts are relation tests).",
    ),
    ("test-bounds", "error", "designs", "A row_count or row_count_change test has no bound, or min above max."),
    ("test-assertion-parse", "error", "designs", "A custom assertion (tests/*.sql) is not one SELECT that parses."),
    ("test-assertion-settings", "error", "designs", "A custom assertion's tests/<name>.yaml is not valid."),
    ("test-compile-failed", "error", "warehouse", "The warehouse refuses a data test's query (--with-warehouse)."),
    (
        "test-assertion-reads-nothing",
        "warning",
        "designs",
        "A custom assertion reads no relation of the project, so no build runs it.",
    ),
    ("cursor-type", "error", "designs", "The incremental cursor's type cannot order rows exactly."),
    ("bad-lag", "error", "designs", "The incremental lag does not fit the cursor's type."),
    (
        "extract-on-derived",
        "warning",
        "designs",
        "A CTAS or view has extract settings, which apply to source tables only.",
    ),
    ("view-constraints", "warning", "designs", "A view has constraints; only tables are checked before publishing."),
    ("bad-attribute", "error", "designs", "A warehouse attribute (e.g. Redshift distkey, sortkey) is invalid."),
    ("spark-unavailable", "error", "designs", "A table uses job_type spark but pyspark cannot be imported."),
    ("job-type-unavailable", "error", "designs", "A table uses a job type this version of Conveyor cannot run."),
    ("command-missing", "error", "designs", "A table uses job_type command but has no extract.command."),
    ("bad-command-template", "error", "designs", "extract.command uses a placeholder that does not exist."),
    ("command-ignored", "warning", "designs", "extract.command is set but the table's job type is not command."),
    (
        "name-too-long",
        "error",
        "designs",
        "A schema, table or column name is longer than a PostgreSQL (63 bytes; 55 for a schema, which takes "
        "$staging) or Redshift (127) environment keeps: it would be cut short.",
    ),
    (
        "name-case-clash",
        "error",
        "designs",
        "Two columns differ only in case, which a DuckDB environment cannot tell apart.",
    ),
    (
        "upstream-name-ambiguous",
        "error",
        "designs",
        'source_table has more than one dot: quote the part that holds one, e.g. public."dotted.name".',
    ),
    (
        "bad-freshness",
        "error",
        "designs",
        'A freshness warn_after or error_after is not a duration such as "12 hours".',
    ),
    ("freshness-order", "error", "designs", "A freshness warn_after is longer than its error_after."),
    (
        "freshness-on-derived",
        "warning",
        "designs",
        "A CTAS or view has freshness, which applies to source tables only.",
    ),
    # ----------------------------------------------------------------- dependencies
    ("unneeded-dependency", "warning", "dependencies", "depends_on names a relation the SQL does not read."),
    ("redundant-dependency", "warning", "dependencies", "depends_on names a relation the SQL reads already."),
    # ----------------------------------------------------------------- SQL output columns
    ("output-column-missing", "error", "sql", "A design column is not among the columns the SQL produces."),
    ("output-column-extra", "error", "sql", "The SQL produces a column the design does not list."),
    ("output-column-duplicate", "error", "sql", "The SQL produces two columns with the same name."),
    ("output-column-order", "error", "sql", "The SQL produces the design's columns in another order."),
    (
        "output-column-type",
        "error",
        "warehouse",
        "The SQL produces a column of another kind than the design's type (e.g. text for integer).",
    ),
    (
        "output-column-narrowing",
        "warning",
        "warehouse",
        "The SQL produces a wider type than the design's, so values may not fit (e.g. bigint into integer).",
    ),
    ("output-column-unknown-type", "info", "warehouse", "The warehouse reports a type validate cannot compare."),
    (
        "bind-failed",
        "error",
        "sql",
        "The query does not bind against the designs (in an in-memory DuckDB): an unknown column, table or "
        "function, or a type error such as 'a' + 1.",
    ),
    (
        "not-bound",
        "info",
        "sql",
        "A query was not bound: it reads a table outside the project, files, or a relation that failed, or "
        "(PostgreSQL/Redshift) DuckDB cannot check it.",
    ),
    (
        "compile-failed",
        "error",
        "warehouse",
        "The warehouse rejected the relation's statement (e.g. a missing column).",
    ),
    (
        "not-compiled",
        "info",
        "warehouse",
        "A relation was not compiled: it reads a table outside the project, or a relation that failed.",
    ),
    ("warehouse-unavailable", "error", "warehouse", "The throwaway warehouse for --with-warehouse cannot be created."),
    (
        "unknown-environment",
        "error",
        "warehouse",
        "--with-warehouse or --env names an environment conveyor.yaml does not define.",
    ),
    # ----------------------------------------------------------------- upstream drift
    ("upstream-unreachable", "error", "sources", "A source cannot be reached (the DSN is shown masked)."),
    ("upstream-table-missing", "error", "sources", "The upstream table of a source design is gone."),
    (
        "upstream-describe-failed",
        "error",
        "sources",
        "The upstream table cannot be described (e.g. a column type Conveyor cannot map).",
    ),
    ("upstream-column-removed", "error", "sources", "A loaded design column no longer exists upstream."),
    (
        "upstream-column-retyped",
        "error",
        "sources",
        "An upstream column's type cannot be read as the design type (e.g. text for integer).",
    ),
    (
        "upstream-type-may-not-fit",
        "warning",
        "sources",
        "An upstream column's type is wider than the design's, or converts to it value by value (e.g. bigint for "
        "integer, text for varchar(2) or uuid); a value that does not fit fails the extract.",
    ),
    (
        "upstream-type-fits",
        "info",
        "sources",
        "An upstream column's type differs from the design's, but every value fits (e.g. integer for bigint).",
    ),
    (
        "upstream-column-nullable",
        "warning",
        "sources",
        "A column the design declares not null (or a key) allows NULL upstream now; a NULL would fail the load.",
    ),
    (
        "upstream-column-not-null",
        "warning",
        "sources",
        "An upstream column became NOT NULL; the design could say not_null.",
    ),
    (
        "upstream-column-added",
        "warning",
        "sources",
        "Upstream has a column the design does not list (it is not extracted).",
    ),
    ("upstream-skipped-column-removed", "warning", "sources", "A skipped design column no longer exists upstream."),
    (
        "upstream-zero-date-not-null",
        "warning",
        "sources",
        "A design says not_null on a MySQL date column whose zero dates read as NULL (zero_dates: null); a zero "
        "date would fail the load.",
    ),
    (
        "upstream-table-undesigned",
        "warning",
        "sources",
        "A source's include/exclude globs select an upstream table no design extracts (validating the whole "
        "project only).",
    ),
    ("upstream-key-changed", "warning", "sources", "The upstream primary key differs from the design's."),
    ("upstream-unique-changed", "warning", "sources", "An upstream unique constraint was added or dropped."),
)
