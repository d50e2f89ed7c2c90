"""The PostgreSQL warehouse engine: ``warehouse`` (the environment), ``build`` (a load into staging
schemas, published by renaming them), ``transaction`` (``update`` and ``upgrade`` in place),
``catalog``, ``copy`` and ``binary`` (binary COPY). Import the module you need: this package
imports nothing, so naming it costs no driver import."""
