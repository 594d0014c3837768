"""Test databases: a fresh one for every test, SQLite by default or PostgreSQL (TETHER_TEST_DB=postgresql).

Running the Alembic migrations for every test's app cost ~70 ms on SQLite and ~250 ms on
PostgreSQL. Instead the schema is migrated once per pytest process into a template, and
each test's database is a copy of it: a file copy on SQLite, CREATE DATABASE ... TEMPLATE
on PostgreSQL. Tests of the migrations themselves ask for an empty database.

Dropping a PostgreSQL database forces a checkpoint (~0.5 s here): finished databases are
dropped by a thread of their own, and the last ones when the session ends.
"""

import contextlib
import os
import queue
import shutil
import threading
import uuid

import psycopg

from app import create_app, db
from config import TestingConfig, sqlalchemy_url

PG_ADMIN_URL = os.environ.get("TETHER_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/test")


def on_postgresql():
    return os.environ.get("TETHER_TEST_DB") == "postgresql"


def migrate(url):
    """Bring the database at `url` to the current schema through the app's own migrations."""
    settings = {"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(url), "AUTO_MIGRATE": True}
    config = type("Config", (TestingConfig,), settings)
    app = create_app(config)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def admin(sql):
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


def postgresql_url(name):
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


class Dropper:
    """Drops PostgreSQL databases in the background; `finish()` waits for the last one."""

    def __init__(self):
        self.names = queue.Queue()
        self.thread = None
        self.left = []  # (name, error) of the databases that could not be dropped

    def drop(self, name):
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="drop test databases", daemon=True)
            self.thread.start()
        self.names.put(name)

    def _run(self):
        while (name := self.names.get()) is not None:
            try:
                admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as error:
                self.left.append((name, error))

    def finish(self):
        if self.thread is not None:
            self.names.put(None)
            self.thread.join()
            self.thread = None
        assert not self.left, f"test databases left on PostgreSQL: {self.left}"


class Databases:
    """Fresh databases for one pytest process, with or without the schema."""

    def __init__(self, base_dir):
        self.base_dir = base_dir  # a session temporary folder: the SQLite template lives there
        self.sqlite_template = None  # the migrated templates, made on first use
        self.postgresql_template = None
        self.dropper = Dropper()

    @contextlib.contextmanager
    def fresh(self, folder, schema=True, postgresql=None):
        """The URL of a new database (a file in `folder` on SQLite), with the schema or empty.

        PostgreSQL if `postgresql` is true, or if it is None and TETHER_TEST_DB=postgresql.
        """
        if not (on_postgresql() if postgresql is None else postgresql):
            path = os.path.join(folder, "tether.sqlite3" if schema else "empty.sqlite3")
            if schema:
                shutil.copyfile(self.sqlite_template_path(), path)
            yield f"sqlite:///{path}"
            return
        name = f"tether_test_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{self._postgresql_template()}"' if schema else ""
        admin(f'CREATE DATABASE "{name}"{template}')
        try:
            yield postgresql_url(name)
        finally:
            self.dropper.drop(name)

    def sqlite_template_path(self):
        """The migrated SQLite file that every fresh SQLite database is a copy of."""
        if self.sqlite_template is None:
            path = os.path.join(self.base_dir, "template.sqlite3")
            migrate(f"sqlite:///{path}")
            # Every connection is closed, so SQLite has checkpointed its write-ahead log into
            # the file: a copy of the file alone is the whole database.
            assert not os.path.exists(path + "-wal") or not os.path.getsize(path + "-wal")
            self.sqlite_template = path
        return self.sqlite_template

    def _postgresql_template(self):
        if self.postgresql_template is None:
            name = f"tether_template_{uuid.uuid4().hex[:12]}"
            admin(f'CREATE DATABASE "{name}"')
            self.postgresql_template = name  # set first: dropped at the end even if migrating fails
            migrate(postgresql_url(name))
        return self.postgresql_template

    def close(self):
        """Drop what is left on PostgreSQL; the SQLite files go with pytest's temporary folders."""
        if self.postgresql_template is not None:
            self.dropper.drop(self.postgresql_template)
            self.postgresql_template = None
        self.dropper.finish()
