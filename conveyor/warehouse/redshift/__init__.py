"""The Amazon Redshift warehouse engine: ``warehouse`` (the environment; SQL generation, refusals),
``ddl`` (types and physical layout) and ``copy`` (S3 manifests, COPY and UNLOAD). Import the module
you need: this package imports nothing."""
