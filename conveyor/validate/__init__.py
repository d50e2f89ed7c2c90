"""``conveyor validate``: every check a project needs before it runs, all problems in one report.

    from conveyor.validate import validate
    report = validate("examples/shop", sources=False)
    for problem in report.sorted():
        print(problem.severity, problem.code, problem.render())
    raise SystemExit(report.exit_code)

See docs/validate.md for what is checked, the codes and the JSON shape.
"""

from conveyor.validate.codes import CODES, Code
from conveyor.validate.problems import CHECKS, Problem, Report, Severity
from conveyor.validate.run import validate

__all__ = ["CHECKS", "CODES", "Code", "Problem", "Report", "Severity", "validate"]
