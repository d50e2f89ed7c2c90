"""The DuckDB warehouse engine: ``warehouse`` (the environment), ``build`` (a load into a private
file, published by one rename), ``transaction`` (``update`` and ``upgrade`` in place), ``files``,
``sql`` and ``lock``. Import the module you need: this package imports nothing."""
