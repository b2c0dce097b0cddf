"""Alembic migrations: a database with the baseline schema (main before migrations, commit
6e9c4ec) and rows in every table upgrades in place to head with every row kept, on SQLite and
Postgres; a fresh database is created at head; `feature-platform db upgrade / current`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.queue import TaskQueue
from feature_platform.programs.project import (
    ensure_program_database,
    program_schema,
    program_settings,
)
from feature_platform.programs.registry import TemplateRegistry
from feature_platform.store import migrations
from feature_platform.store.db import create_engine

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ROWS = 3
REVISION_0002 = "0002_answer_revisions_sources"


def value(column: sa.Column, i: int) -> object:
    """A value of the column's type for row i; equal across tables for the same i, so a
    foreign key finds the row it points at."""
    kind = column.type
    if isinstance(kind, sa.Integer):
        return i + 1
    if isinstance(kind, sa.Float):
        return i + 0.5
    if isinstance(kind, sa.DateTime):
        return T0 + timedelta(minutes=i)
    if isinstance(kind, sa.Boolean):
        return bool(i % 2)
    if isinstance(kind, sa.LargeBinary):
        return bytes([i, 1, 2])
    if isinstance(kind, sa.Text):  # JSON text, as the stores keep it
        return f'["k{i}", "other"]' if column.name == "classes" else f'{{"row": {i}}}'
    return f"k{i}"


def baseline_database(
    url: str, *, stamped: bool, revision: str = migrations.BASELINE
) -> dict[str, list[tuple]]:
    """The schema at `revision` (default the baseline) with ROWS rows in every table; without
    the version table when not `stamped` (a database the stores made with create_all before
    migrations existed)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        command.upgrade(migrations._config(conn), revision)
        conn.commit()
    reflected = sa.MetaData()
    reflected.reflect(engine)
    rows: dict[str, list[tuple]] = {}
    with engine.begin() as conn:
        if not stamped:
            conn.execute(sa.text(f"DROP TABLE {migrations.VERSION_TABLE}"))
        for table in reflected.sorted_tables:
            if table.name == migrations.VERSION_TABLE:
                continue
            records = [{c.name: value(c, i) for c in table.columns} for i in range(ROWS)]
            conn.execute(table.insert(), records)
            key = [c.name for c in table.primary_key.columns]
            rows[table.name] = [
                tuple(r) for r in conn.execute(sa.select(table).order_by(*key)).all()
            ]
            if conn.dialect.name == "postgresql" and key == ["id"]:
                conn.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), {ROWS})")
                )
    engine.dispose()
    return rows


def assert_rows_kept(engine: sa.Engine, before: dict[str, list[tuple]]) -> None:
    """Every row of `before` is still there, its old columns unchanged."""
    after = sa.MetaData()
    after.reflect(engine)
    with engine.connect() as conn:
        for name, rows in before.items():
            table = after.tables[name]
            old_columns = [table.c[c] for c in table.columns.keys()][: len(rows[0])]
            key = [c.name for c in table.primary_key.columns]
            kept = [tuple(r) for r in conn.execute(sa.select(*old_columns).order_by(*key)).all()]
            assert kept == rows, name


def assert_matches_definitions(engine: sa.Engine) -> None:
    """No table or column of the current definitions is missing (Alembic's own comparison)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE})
        diffs = compare_metadata(context, migrations.target_metadata())
    missing = [d for d in diffs if d[0] in ("add_table", "add_column", "remove_column")]
    assert missing == []


@pytest.mark.parametrize("stamped", [False, True], ids=["pre-alembic", "at-baseline"])
def test_a_baseline_database_upgrades_in_place_keeping_every_row(
    database_url: str, stamped: bool
) -> None:
    before = baseline_database(database_url, stamped=stamped)
    assert len(before) >= 20 and all(len(r) == ROWS for r in before.values())
    engine = create_engine(database_url)
    assert migrations.current(engine) == (migrations.BASELINE if stamped else None)

    start, end = migrations.upgrade(engine)
    assert (start, end) == (migrations.BASELINE if stamped else None, migrations.head())
    assert_rows_kept(engine, before)
    with engine.connect() as conn:
        revisions = conn.execute(sa.text("SELECT revision FROM labeling_answers")).scalars()
        assert set(revisions) == {1}  # the new column's default fills the old rows
    # The upgraded database works: an answer corrected under the same submission id is a
    # revision, which the baseline's unique submission id would have refused.
    queue = TaskQueue(engine)
    old = queue.answer_history("k0")[0]
    with engine.begin() as conn:  # the generated person behind the answer may label
        conn.execute(
            sa.text(
                "UPDATE governance_people SET role = 'annotator', active = :on WHERE name = :n"
            ),
            {"on": True, "n": old.annotator},
        )
    queue.submit("k0", old.annotator, "other", submission_id=old.submission_id)
    assert [a.revision for a in queue.answer_history("k0", old.annotator)] == [1, 2]
    assert migrations.upgrade(engine) == (end, end)  # idempotent


def test_a_database_at_0002_upgrades_to_head_keeping_every_row(database_url: str) -> None:
    before = baseline_database(database_url, stamped=True, revision=REVISION_0002)
    assert {"labeling_passes", "labeling_answer_sources"} <= set(before)
    engine = create_engine(database_url)
    assert migrations.current(engine) == REVISION_0002
    assert migrations.upgrade(engine) == (REVISION_0002, migrations.head())
    assert_rows_kept(engine, before)
    assert_matches_definitions(engine)
    with engine.connect() as conn:
        # Snapshots written before 0003 do not say which method actually ran.
        used = conn.execute(sa.text("SELECT method_used, method_note FROM label_snapshots"))
        assert used.all() == [(None, None)] * ROWS
    # The new tables work: a template is published (audited) on the upgraded database.
    AnnotatorRegistry(engine).add("lou", "admin", actor="lou")
    registry = TemplateRegistry(engine)
    published, new = registry.publish(digits.template(), check_data=False, actor="lou")
    assert (published.id, new) == ("digits@v1", True)
    assert migrations.upgrade(engine) == (migrations.head(), migrations.head())
    engine.dispose()


def test_a_program_schema_is_brought_to_head_in_its_own_schema(
    database_url: str, tmp_path: Path
) -> None:
    """A program's database (its own SQLite file, or its own Postgres schema) is migrated by
    the same path as the platform database: left at 0002 with rows, it is upgraded by the
    program's store on start-up, rows kept. On Postgres the version table lives in the
    program's schema and the platform's public schema is untouched."""
    base = dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    name = "Wine-2.v1"  # case, '-' and '.': kept apart from 'wine_2_v1'
    ensure_program_database(base, name)
    program_url = program_settings(base, name).database_url
    before = baseline_database(program_url, stamped=True, revision=REVISION_0002)
    store = FeatureStore(program_settings(base, name))  # start-up: ensure_schema
    assert migrations.current(store.engine) == migrations.head()
    assert_rows_kept(store.engine, before)
    assert_matches_definitions(store.engine)
    if database_url.startswith("postgresql"):
        inspector = sa.inspect(sa.create_engine(database_url))
        schema = program_schema(name)
        assert schema == "fp_Wine-2.v1"
        in_schema = set(inspector.get_table_names(schema=schema))
        assert {migrations.VERSION_TABLE, "labeling_tasks", "program_templates"} <= in_schema
        assert inspector.get_table_names(schema="public") == []
    else:
        assert store.settings.home == base.home / "programs" / name
        assert not (base.home / "platform.db").exists()
    # A look-alike name gets its own database, fresh at head.
    ensure_program_database(base, "wine_2_v1")
    other = FeatureStore(program_settings(base, "wine_2_v1"))
    assert migrations.current(other.engine) == migrations.head()
    assert other.queue.tasks() == [] and len(store.queue.tasks()) == ROWS
    for engine in (store.engine, other.engine):
        engine.dispose()


def test_a_fresh_database_is_created_at_head_and_the_cli_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    assert main(["db", "current"]) == 1
    assert "no version" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"to {migrations.head()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{migrations.head()} (head)"
    assert main(["db", "upgrade"]) == 0
    assert "already at" in capsys.readouterr().out
    engine = create_engine(f"sqlite:///{tmp_path / 'fp' / 'platform.db'}")
    tables = set(sa.inspect(engine).get_table_names())
    assert set(migrations.target_metadata().tables) <= tables


def test_a_pre_alembic_database_that_does_not_match_the_baseline_is_left_alone(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE labeling_tasks (id VARCHAR(40) PRIMARY KEY)"))
    with pytest.raises(migrations.SchemaMismatchOnUpgradeError, match="labeling_tasks lacks"):
        migrations.upgrade(engine)
    assert migrations.current(engine) is None


def test_programs_published_before_0005_run_their_newest_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine, "0004_round_attempts")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for version in ("v1", "v2", "v10"):
            conn.execute(
                sa.text(
                    "INSERT INTO program_templates (name, version, fingerprint, document, "
                    "base_dir, created_at, note) VALUES ('wine', :v, :f, '{}', '.', :at, '')"
                ),
                {"v": version, "f": f"fp-{version}", "at": at},
            )
    assert migrations.upgrade(engine) == ("0004_round_attempts", migrations.head())
    assert TemplateRegistry(engine).current("wine") == "v10"  # by number, not by text
    assert_matches_definitions(engine)
    engine.dispose()


def test_a_database_at_0005_gets_label_set_versions(database_url: str) -> None:
    """0008: tasks, answers and decisions made before are in label set version 1; snapshots
    made before state no version; the upgraded database takes a label set change."""
    from feature_platform.labeling.label_sets import LabelChange, LabelSets

    before = baseline_database(database_url, stamped=True, revision="0005_template_current")
    engine = create_engine(database_url)
    assert migrations.upgrade(engine) == ("0005_template_current", migrations.head())
    assert_rows_kept(engine, before)
    assert_matches_definitions(engine)
    with engine.connect() as conn:
        for table in ("labeling_tasks", "labeling_answers", "label_adjudications"):
            versions = conn.execute(sa.text(f"SELECT label_set_version FROM {table}")).scalars()
            assert list(versions) == [1] * ROWS, table
        snapshots = conn.execute(sa.text("SELECT label_set_version FROM label_snapshots"))
        assert snapshots.scalars().all() == [None] * ROWS
    AnnotatorRegistry(engine).add("lou", "admin", actor="lou")
    label_sets = LabelSets(engine, TaskQueue(engine))
    evolution = label_sets.evolve(
        "p", LabelChange.rename("k0", "zero"), initial_classes=["k0", "other"], actor="lou"
    )
    assert evolution.version.classes == ("zero", "other")
    assert TaskQueue(engine).get("k0").classes == ["zero", "other"]
    engine.dispose()
