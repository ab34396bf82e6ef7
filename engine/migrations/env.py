"""Alembic's entry point. qproc passes an open connection (``qproc db upgrade``); the ``alembic`` command a
developer runs to write a migration (``alembic revision --autogenerate -m ...``) gets one from QPROC_DB.
"""

from alembic import context

from engine.store import Base, Database

connection = context.config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    database = Database()
    with database.engine.begin() as own_connection:
        _run(own_connection)
    database.dispose()
