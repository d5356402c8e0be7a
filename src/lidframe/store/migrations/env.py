"""Alembic environment: migrations run on the connection lidframe passes in (see engine.migrate)."""

from alembic import context

from lidframe.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: the URL comes from alembic.ini / -x db=URL
    from sqlalchemy import create_engine

    url = context.get_x_argument(as_dictionary=True).get("db") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    with create_engine(str(url)).connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
