"""Data tests: what correct data looks like, checked on the staging build before it is published.

- :mod:`conveyor.quality.plan` turns designs and custom assertions into :class:`DataTest` s;
- :mod:`conveyor.quality.sql` writes the query that finds each test's failing rows;
- :mod:`conveyor.quality.run` runs them (on a build's staging or a published warehouse) and
  records each outcome as a tracking-store event.
"""
