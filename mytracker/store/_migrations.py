"""mytracker's own tables inside a Trackio project file, as named migrations.

Each migration is a name and a script; the names applied are recorded in the file's
``mytracker_migrations`` table, so applying is idempotent and travels with the file. Never edit
a migration that has shipped: add a new one.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from mytracker.store._trackio import TRACKIO_SCHEMA_VERSION, TRACKIO_TABLES

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_mlflow_tables",
        """
        CREATE TABLE mlflow_experiment (
            experiment_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            artifact_location TEXT,
            lifecycle_stage TEXT NOT NULL,
            creation_time INTEGER,
            last_update_time INTEGER
        );
        CREATE TABLE mlflow_experiment_tags (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE mlflow_runs (
            run_id TEXT PRIMARY KEY,
            name TEXT,
            user_id TEXT,
            status TEXT NOT NULL,
            start_time INTEGER,
            end_time INTEGER,
            lifecycle_stage TEXT NOT NULL,
            artifact_uri TEXT,
            deleted_time INTEGER
        );
        CREATE INDEX mlflow_runs_start ON mlflow_runs(start_time DESC, run_id);
        CREATE TABLE mlflow_params (
            run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_params_key ON mlflow_params(key, value);
        CREATE TABLE mlflow_tags (
            run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_tags_key ON mlflow_tags(key, value);
        CREATE TABLE mlflow_latest_metrics (
            run_id TEXT NOT NULL, key TEXT NOT NULL,
            value REAL, timestamp INTEGER NOT NULL, step INTEGER NOT NULL, is_nan INTEGER NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_latest_metrics_key ON mlflow_latest_metrics(key, value);
        CREATE TABLE mlflow_datasets (
            dataset_uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL, digest TEXT NOT NULL,
            source_type TEXT, source TEXT, schema TEXT, profile TEXT,
            UNIQUE (name, digest)
        );
        CREATE TABLE mlflow_inputs (
            input_uuid TEXT PRIMARY KEY,
            dataset_uuid TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER NOT NULL,
            UNIQUE (run_id, dataset_uuid)
        );
        CREATE TABLE mlflow_input_tags (
            input_uuid TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (input_uuid, name)
        );
        CREATE TABLE mlflow_outputs (
            run_id TEXT NOT NULL, model_id TEXT NOT NULL, step INTEGER NOT NULL,
            PRIMARY KEY (run_id, model_id)
        );
        CREATE TABLE mlflow_trace_links (
            run_id TEXT NOT NULL, trace_id TEXT NOT NULL, PRIMARY KEY (run_id, trace_id)
        );
        """,
    ),
    (
        "0002_run_owners",
        # The process that created a run, so runs left RUNNING by a killed process can be found.
        """
        CREATE TABLE mlflow_run_owners (
            run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            process_start REAL
        );
        """,
    ),
    (
        "0004_logged_models",
        # MLflow 3's LoggedModels, with the columns of MLflow's SQL store (status as its integer).
        """
        CREATE TABLE mlflow_logged_models (
            model_id TEXT PRIMARY KEY,
            experiment_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            artifact_location TEXT NOT NULL,
            creation_timestamp_ms INTEGER NOT NULL,
            last_updated_timestamp_ms INTEGER NOT NULL,
            status INTEGER NOT NULL,
            lifecycle_stage TEXT NOT NULL,
            model_type TEXT,
            source_run_id TEXT,
            status_message TEXT
        );
        CREATE TABLE mlflow_logged_model_tags (
            model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (model_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE mlflow_logged_model_params (
            model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (model_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE mlflow_logged_model_metrics (
            model_id TEXT NOT NULL, key TEXT NOT NULL, timestamp INTEGER NOT NULL,
            step INTEGER NOT NULL, run_id TEXT NOT NULL, value REAL,
            dataset_uuid TEXT, dataset_name TEXT, dataset_digest TEXT,
            PRIMARY KEY (model_id, key, timestamp, step, run_id)
        ) WITHOUT ROWID;
        """,
    ),
    (
        "0005_joined_points",
        # Metric points shown in a Trackio row stamped earlier than they were (a step's keys
        # logged moments apart make one row, see _metrics): each point as MLflow logged it, as a
        # one-key row with its own time, and the id of the Trackio row that shows it.
        """
        CREATE TABLE mlflow_joined_points (
            row_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            timestamp TEXT NOT NULL,
            metrics TEXT NOT NULL,
            PRIMARY KEY (row_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_joined_points_key ON mlflow_joined_points(run_id, key, timestamp, step);
        CREATE INDEX mlflow_joined_points_step ON mlflow_joined_points(run_id, step, timestamp);
        """,
    ),
    (
        "0006_drop_latest_metrics_key",
        # No query reads the latest values by key across runs (search looks them up by run id
        # and key, the primary key), and the index cost every logged step a page write.
        "DROP INDEX IF EXISTS mlflow_latest_metrics_key",
    ),
    (
        "0007_latest_metrics_order",
        # When each key was first logged (ns, plus its place in the batch): MLflow's SQL store
        # lists a run's metrics in that order (its latest-metrics rows in insertion order), and
        # so does the MLflow UI's run page. Rows from before stay NULL: listed first.
        "ALTER TABLE mlflow_latest_metrics ADD COLUMN logged INTEGER",
    ),
]


def pending(conn: sqlite3.Connection) -> bool:
    """Whether a file that holds an experiment lacks any of the migrations."""
    applied = {row[0] for row in conn.execute("SELECT name FROM mytracker_migrations")}
    return any(name not in applied for name, _ in MIGRATIONS)


def apply(conn: sqlite3.Connection) -> None:
    """Create Trackio's tables (where missing) and apply the pending migrations, inside the
    caller's write transaction."""
    for statement in _statements(TRACKIO_TABLES):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {TRACKIO_SCHEMA_VERSION}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS mytracker_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM mytracker_migrations")}
    for name, script in MIGRATIONS:
        if name in done:
            continue
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO mytracker_migrations VALUES (?, ?)",
            (name, _now()),
        )


def stamp_applied_now(conn: sqlite3.Connection) -> None:
    """Record every migration as applied now: for a file copied from a template (see
    `_db.write_new_project`), inside the caller's write transaction."""
    conn.execute("UPDATE mytracker_migrations SET applied_at = ?", (_now(),))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
