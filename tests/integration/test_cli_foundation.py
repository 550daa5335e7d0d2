"""Foundation commands against the real embedded Postgres and broker.

Each test runs `orderstatus` as a subprocess, as an operator would, and inspects Postgres with asyncpg
and the broker with aiokafka's admin client. `cli_env` points the CLI at this test's own fresh,
migrated database and its own topic names.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.helpers.cli import ok, run_cli, start_cli, user_error
from tests.helpers.database import query as query_async

pytestmark = pytest.mark.integration

CORE_TABLES = {
    "alembic_version", "rules_meta", "statuses", "transitions", "orders", "order_contacts",
    "order_goods_out_notes", "order_reservations", "order_coupons", "order_history",
    "processed_commands", "outbox", "sent_notifications",
}


# ---------------------------------------------------------------- helpers


def query(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    return asyncio.run(query_async(database_url, sql, *args))


def scalar(database_url: str, sql: str, *args):
    rows = query(database_url, sql, *args)
    return rows[0][0] if rows else None


def column(database_url: str, sql: str, *args) -> list:
    return [r[0] for r in query(database_url, sql, *args)]


def public_tables(database_url: str) -> list[str]:
    return column(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")


def write_jsonl(path: Path, *records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def plain_env() -> dict[str, str]:
    """Environment for commands that touch no service (rules check, graph --file)."""
    return dict(os.environ)


@pytest.fixture
def fresh_database(postgres_url):
    """The URL of a database that does not exist yet (migrate must create it); dropped afterwards."""
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(postgres_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))

    async def drop():
        conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def loaded(cli_env, database_url, sample_rules_path):
    """cli_env with the sample rules loaded."""
    ok(run_cli(cli_env, "rules", "load", sample_rules_path))
    return cli_env


# ---------------------------------------------------------------- migrate


class TestMigrate:
    def test_migrate_twice_on_a_new_database(self, fresh_database):
        """migrate creates the missing database and the schema; a second run succeeds and changes nothing."""
        env = {**os.environ, "ORDERSTATUS_DATABASE_URL": fresh_database}
        ok(run_cli(env, "migrate"))
        tables = public_tables(fresh_database)
        heads = column(fresh_database, "SELECT version_num FROM alembic_version")
        assert CORE_TABLES <= set(tables)
        second = ok(run_cli(env, "migrate"))
        assert "up to date" in second.stderr
        assert public_tables(fresh_database) == tables
        assert column(fresh_database, "SELECT version_num FROM alembic_version") == heads

    def test_migrate_on_migrated_database(self, cli_env, database_url):
        """migrate on the test's already-migrated database is a no-op that exits 0."""
        before = public_tables(database_url)
        ok(run_cli(cli_env, "migrate"))
        assert public_tables(database_url) == before

    def test_migrate_concurrently(self, fresh_database, database_url):
        """Three migrate processes started together all exit 0 and leave one schema and one version row."""
        env = {**os.environ, "ORDERSTATUS_DATABASE_URL": fresh_database}
        procs = [start_cli(env, "migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
        # the same schema as a database migrated once (the per-test template copy)
        assert public_tables(fresh_database) == public_tables(database_url)
        assert CORE_TABLES <= set(public_tables(fresh_database))
        versions = column(fresh_database, "SELECT version_num FROM alembic_version")
        assert len(versions) == 1
        assert versions == column(database_url, "SELECT version_num FROM alembic_version")

    def test_migrate_unreachable_database(self):
        """migrate against a server that is not there is one clear line, not a traceback."""
        env = {**os.environ, "ORDERSTATUS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
        user_error(run_cli(env, "migrate"), "migration failed")


# ---------------------------------------------------------------- rules check

GOOD_RULES = """\
override_roles: [manager]
statuses:
  - {id: 1,  code: Draft,     name: Draft,     order_types: [SO, PO], initial: true}
  - {id: 2,  code: Confirmed, name: Confirmed, order_types: [SO, PO]}
  - {id: 21, code: Cancelled, name: Cancelled, order_types: [SO], cancelled: true}
  - {id: 30, code: Invoiced,  name: Invoiced,  order_types: [SO], invoiced: true}
transitions:
  - {order_type: SO, from: Draft,     to: Confirmed, roles: [staff]}
  - {order_type: SO, from: Confirmed, to: Cancelled, roles: [client, staff]}
"""

BAD_RULES = [
    pytest.param(
        GOOD_RULES.replace("{id: 21,", "{id: 2,"), ["duplicate id 2"], id="duplicate-id"
    ),
    pytest.param(
        GOOD_RULES.replace("code: Invoiced,", "code: Draft,"), ["duplicate code 'Draft'"], id="duplicate-code"
    ),
    pytest.param(
        GOOD_RULES.replace("to: Cancelled", "to: Canceled"), ["transitions[1]", "unknown status 'Canceled'"],
        id="unknown-code",
    ),
    pytest.param(
        GOOD_RULES.replace("{order_type: SO, from: Draft", "{order_type: XO, from: Draft"),
        ["transitions[0]", "unknown order type 'XO'"], id="unknown-order-type",
    ),
    pytest.param(
        GOOD_RULES.replace("roles: [client, staff]", "roles: [client, clerk]"),
        ["transitions[1]", "unknown role 'clerk'"], id="unknown-role",
    ),
    pytest.param(
        GOOD_RULES.replace("override_roles: [manager]", "override_roles: [manager, boss]"),
        ["override_roles", "unknown role 'boss'"], id="unknown-override-role",
    ),
    pytest.param(
        GOOD_RULES.replace("order_types: [SO, PO]}", "order_types: [SO, PO], initial: true}", 1),
        ["more than one initial", "Draft, Confirmed"], id="two-initial",
    ),
    pytest.param(
        GOOD_RULES.replace("invoiced: true", "cancelled: true"), ["more than one cancelled", "SO"], id="two-cancelled"
    ),
    pytest.param(
        GOOD_RULES.replace("cancelled: true", "invoiced: true"), ["more than one invoiced", "SO"], id="two-invoiced"
    ),
    pytest.param("statuses: [\n  {id: 1\n", ["not valid YAML at line"], id="invalid-yaml"),
    pytest.param("", ["must be a mapping"], id="empty-file"),
]


class TestRulesCheck:
    def test_good_sample(self, plain_env, sample_rules_path):
        """rules check accepts the sample, says how much it holds and exits 0."""
        result = ok(run_cli(plain_env, "rules", "check", sample_rules_path))
        assert "ok (23 statuses, 37 transitions)" in result.stdout

    @pytest.mark.parametrize(("text", "fragments"), BAD_RULES)
    def test_bad_file(self, plain_env, tmp_path, text, fragments):
        """rules check refuses the broken file: non-zero exit, one stderr line naming the file and the entry."""
        path = tmp_path / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        result = run_cli(plain_env, "rules", "check", path)
        user_error(result, str(path), *fragments)
        assert result.stdout == ""

    def test_missing_file(self, plain_env, tmp_path):
        """rules check on a path that does not exist is one line, not a traceback."""
        user_error(run_cli(plain_env, "rules", "check", tmp_path / "absent.yaml"), "cannot read", "absent.yaml")


# ---------------------------------------------------------------- rules load


class TestRulesLoad:
    def test_load_good_file_and_reload(self, cli_env, database_url, sample_rules_path):
        """rules load writes the statuses and transitions; loading again replaces them and bumps the version."""
        first = ok(run_cli(cli_env, "rules", "load", sample_rules_path))
        assert "rules version 1" in first.stdout
        assert scalar(database_url, "SELECT count(*) FROM statuses") == 23
        assert scalar(database_url, "SELECT count(*) FROM transitions") == 37
        row = query(database_url, "SELECT * FROM statuses WHERE code = 'CancelledByClient'")[0]
        assert (row["id"], row["cancelled"], row["can_override_to"], row["hidden"]) == (21, True, True, False)
        assert sorted(row["order_types"]) == ["SC", "SO"]
        assert sorted(
            column(database_url, "SELECT unnest(roles) FROM transitions WHERE order_type = 'TR' AND from_status = 106")
        ) == ["manager"]
        meta = query(database_url, "SELECT * FROM rules_meta")
        assert len(meta) == 1 and meta[0]["version"] == 1
        assert sorted(meta[0]["override_roles"]) == ["manager", "system"]
        assert len(meta[0]["source_sha256"]) == 64

        second = ok(run_cli(cli_env, "rules", "load", sample_rules_path))
        assert "rules version 2" in second.stdout
        assert scalar(database_url, "SELECT version FROM rules_meta") == 2
        assert scalar(database_url, "SELECT count(*) FROM statuses") == 23
        assert scalar(database_url, "SELECT count(*) FROM transitions") == 37

    def test_load_replaces_whole_rule_set(self, cli_env, database_url, sample_rules_path, tmp_path):
        """Loading a smaller file leaves exactly its statuses and transitions (a swap, not a merge)."""
        ok(run_cli(cli_env, "rules", "load", sample_rules_path))
        small = tmp_path / "small.yaml"
        small.write_text(GOOD_RULES, encoding="utf-8")
        ok(run_cli(cli_env, "rules", "load", small))
        assert column(database_url, "SELECT code FROM statuses ORDER BY id") == ["Draft", "Confirmed", "Cancelled", "Invoiced"]
        assert scalar(database_url, "SELECT count(*) FROM transitions") == 2
        assert query(database_url, "SELECT version, override_roles FROM rules_meta")[0]["override_roles"] == ["manager"]

    @pytest.mark.parametrize(
        ("text", "fragments"),
        [BAD_RULES[2], BAD_RULES[6], BAD_RULES[9]],
    )
    def test_bad_file_leaves_previous_rules(self, cli_env, database_url, sample_rules_path, tmp_path, text, fragments):
        """A refused file changes nothing: the previously loaded rules and version stay as they were."""
        ok(run_cli(cli_env, "rules", "load", sample_rules_path))
        before = (
            query(database_url, "SELECT * FROM statuses ORDER BY id"),
            query(database_url, "SELECT * FROM transitions ORDER BY order_type, from_status, to_status"),
            query(database_url, "SELECT * FROM rules_meta"),
        )
        path = tmp_path / "bad.yaml"
        path.write_text(text, encoding="utf-8")
        user_error(run_cli(cli_env, "rules", "load", path), *fragments)
        after = (
            query(database_url, "SELECT * FROM statuses ORDER BY id"),
            query(database_url, "SELECT * FROM transitions ORDER BY order_type, from_status, to_status"),
            query(database_url, "SELECT * FROM rules_meta"),
        )
        assert after == before

    def test_bad_file_on_empty_database_loads_nothing(self, cli_env, database_url, tmp_path):
        """A refused file on a database without rules leaves it without rules."""
        path = tmp_path / "bad.yaml"
        path.write_text(BAD_RULES[0].values[0], encoding="utf-8")
        user_error(run_cli(cli_env, "rules", "load", path), "duplicate id")
        assert scalar(database_url, "SELECT count(*) FROM rules_meta") == 0
        assert scalar(database_url, "SELECT count(*) FROM statuses") == 0


# ---------------------------------------------------------------- orders import


def _facts(database_url: str, order_id: int) -> dict:
    row = query(database_url, "SELECT * FROM orders WHERE order_id = $1", order_id)
    assert row, f"order {order_id} missing"
    order = dict(row[0])
    order["contacts"] = [
        tuple(r) for r in query(
            database_url, "SELECT email, name, kind FROM order_contacts WHERE order_id = $1 ORDER BY email", order_id
        )
    ]
    for key, table, col in (
        ("goods_out_notes", "order_goods_out_notes", "note_ref"),
        ("reservations", "order_reservations", "reservation_ref"),
        ("coupons", "order_coupons", "coupon_code"),
    ):
        order[key] = column(database_url, f"SELECT {col} FROM {table} WHERE order_id = $1 ORDER BY {col}", order_id)
    return order


class TestOrdersImport:
    def test_import_sample(self, loaded, database_url, sample_orders_path):
        """The sample is imported with all its facts; a status code resolves, a missing status is the initial one."""
        result = ok(run_cli(loaded, "orders", "import", sample_orders_path))
        assert "imported 10 orders" in result.stdout
        assert scalar(database_url, "SELECT count(*) FROM orders") == 10

        o1029 = _facts(database_url, 1029)
        assert (o1029["order_type"], o1029["status_id"], o1029["client_id"], o1029["version"]) == ("SO", 2, "c-1", 0)
        assert o1029["payments_total"] == Decimal("0")
        assert o1029["contacts"] == [("ann@example.com", "Ann", "client"), ("pm@example.com", None, "stakeholder")]
        assert (o1029["reservations"], o1029["coupons"], o1029["goods_out_notes"]) == (["R-1"], ["SPRING10"], [])

        o1030 = _facts(database_url, 1030)
        assert o1030["payments_total"] == Decimal("25.00") and o1030["reservations"] == ["R-2"]
        assert _facts(database_url, 1031)["goods_out_notes"] == ["GON-7"]
        assert _facts(database_url, 1031)["status_id"] == 5  # ReadyToShip
        assert _facts(database_url, 1032)["status_id"] == 30  # Invoiced
        assert _facts(database_url, 1033)["status_id"] == 1  # no status: SO's initial (Draft)
        assert _facts(database_url, 2001)["client_id"] is None
        assert _facts(database_url, 3001)["status_id"] == 101  # TR Quoted
        assert scalar(database_url, "SELECT count(*) FROM order_contacts") == 13
        assert scalar(database_url, "SELECT count(*) FROM order_history") == 0  # importing is not a status change

    def test_reimport_is_an_upsert(self, loaded, database_url, sample_orders_path, tmp_path):
        """Importing again updates orders in place and replaces their facts; nothing is duplicated."""
        ok(run_cli(loaded, "orders", "import", sample_orders_path))
        ok(run_cli(loaded, "orders", "import", sample_orders_path))
        assert scalar(database_url, "SELECT count(*) FROM orders") == 10
        assert scalar(database_url, "SELECT count(*) FROM order_contacts") == 13
        assert scalar(database_url, "SELECT count(*) FROM order_reservations") == 2

        update = write_jsonl(
            tmp_path / "update.jsonl",
            {"order_id": 1029, "order_type": "SO", "client_id": "c-1",  # no status: keeps Confirmed
             "contacts": [{"email": "new@example.com", "name": "New", "kind": "client"}],
             "payments_total": "12.50", "goods_out_notes": ["GON-1"], "reservations": ["R-5", "R-6"]},
            {"order_id": 1033, "order_type": "SO", "status": 2, "client_id": "c-3"},  # status by id
            {"order_id": 5000, "order_type": "PO", "status": "Received"},  # a new one
        )
        result = ok(run_cli(loaded, "orders", "import", update))
        assert "imported 3 orders" in result.stdout
        assert scalar(database_url, "SELECT count(*) FROM orders") == 11

        o1029 = _facts(database_url, 1029)
        assert o1029["status_id"] == 2 and o1029["version"] == 0
        assert o1029["contacts"] == [("new@example.com", "New", "client")]
        assert o1029["payments_total"] == Decimal("12.50")
        assert (o1029["goods_out_notes"], o1029["reservations"], o1029["coupons"]) == (["GON-1"], ["R-5", "R-6"], [])
        assert _facts(database_url, 1033)["status_id"] == 2
        assert _facts(database_url, 1033)["contacts"] == []
        assert _facts(database_url, 5000)["status_id"] == 8
        assert _facts(database_url, 1030)["reservations"] == ["R-2"]  # orders not in the file are untouched

    def test_reimport_keeps_the_status_of_an_order_the_service_changed(self, loaded, database_url,
                                                                          sample_orders_path):
        """Re-importing never makes status and history disagree: an order with history keeps its status and
        version (facts updated, the difference reported); an order the service never changed takes the file's."""
        ok(run_cli(loaded, "orders", "import", sample_orders_path))
        # 1029 as the worker leaves it after a client's cancel (v1, history ending in 21); 1031 set by hand, no history
        query(database_url, "UPDATE orders SET status_id = 21, version = 1 WHERE order_id = 1029")
        query(database_url, """
            INSERT INTO order_history (order_id, version, event_id, command_id, from_status, to_status, override,
                                       actor, note_text, is_public, file_id, removed_reservations, removed_coupons,
                                       occurred_at)
            VALUES (1029, 1, $1, 'c-1', '{"id": 2, "code": "Confirmed"}', '{"id": 21, "code": "CancelledByClient"}',
                    false, '{"id": "u-7", "role": "client"}', '', false, NULL, '{}', '{}', now())""", uuid.uuid4())
        query(database_url, "UPDATE orders SET status_id = 6 WHERE order_id = 1031")
        query(database_url, "DELETE FROM order_contacts WHERE order_id = 1029")

        result = ok(run_cli(loaded, "orders", "import", sample_orders_path))
        assert "imported 10 orders" in result.stdout
        assert "1 already changed by the service kept their status" in result.stdout, result.stdout
        assert "1 differ from the file's status (1029)" in result.stdout, result.stdout
        o1029 = _facts(database_url, 1029)
        assert (o1029["status_id"], o1029["version"]) == (21, 1)
        last = query(database_url, "SELECT to_status FROM order_history WHERE order_id = 1029 ORDER BY version DESC")
        assert last[0]["to_status"]["id"] == o1029["status_id"]
        assert o1029["contacts"], "the facts of an order with history are still updated"
        assert _facts(database_url, 1031)["status_id"] == 5  # no history: the file's ReadyToShip again

    def test_bad_line_imports_nothing(self, loaded, database_url, tmp_path):
        """A bad line 3 is reported by number and not even lines 1–2 are imported."""
        path = write_jsonl(
            tmp_path / "bad.jsonl",
            {"order_id": 1, "order_type": "SO"},
            {"order_id": 2, "order_type": "SO", "status": "Confirmed"},
            {"order_id": 3, "order_type": "SO", "status": "Shipped"},
            {"order_id": 4, "order_type": "SO"},
        )
        user_error(run_cli(loaded, "orders", "import", path), "bad.jsonl", "line 3", "unknown status 'Shipped'")
        assert scalar(database_url, "SELECT count(*) FROM orders") == 0

    @pytest.mark.parametrize(
        ("third_line", "fragments"),
        [
            pytest.param('{"order_id": 3, "order_type": "SO"', ["line 3", "not valid JSON"], id="bad-json"),
            pytest.param({"order_id": 3, "order_type": "QQ"}, ["line 3", "unknown order type 'QQ'"], id="unknown-type"),
            pytest.param({"order_type": "SO"}, ["line 3", "order_id"], id="missing-order-id"),
        ],
    )
    def test_bad_line_leaves_existing_orders(self, loaded, database_url, sample_orders_path, tmp_path, third_line, fragments):
        """A refused file changes none of the orders already there (all or nothing)."""
        ok(run_cli(loaded, "orders", "import", sample_orders_path))
        before = _facts(database_url, 1029)
        path = write_jsonl(
            tmp_path / "bad.jsonl",
            {"order_id": 1029, "order_type": "SO", "payments_total": "99"},
            {"order_id": 9, "order_type": "SO"},
            third_line,
        )
        user_error(run_cli(loaded, "orders", "import", path), *fragments)
        assert _facts(database_url, 1029) == before
        assert scalar(database_url, "SELECT count(*) FROM orders") == 10

    def test_import_from_stdin(self, loaded, database_url):
        """`orders import -` reads JSON lines from standard input; blank lines are skipped."""
        text = "\n" + json.dumps({"order_id": 77, "order_type": "TR", "client_id": "c-9"}) + "\n\n"
        result = ok(run_cli(loaded, "orders", "import", "-", input=text))
        assert "imported 1 order\n" in result.stdout
        assert _facts(database_url, 77)["status_id"] == 100  # TR's initial: Requested

    def test_import_without_rules(self, cli_env, database_url, sample_orders_path):
        """Importing before any rules are loaded is one clear line telling what to do."""
        user_error(run_cli(cli_env, "orders", "import", sample_orders_path), "no rules are loaded")
        assert scalar(database_url, "SELECT count(*) FROM orders") == 0

    @pytest.mark.parametrize(
        ("record", "fragments"),
        [
            pytest.param({"order_id": 2**63, "order_type": "SO"}, ["line 2", "order_id"], id="order-id-beyond-bigint"),
            pytest.param({"order_id": 1, "order_type": "SO", "payments_total": "1e20"}, ["line 2", "payments_total"],
                         id="payments-beyond-numeric-18-4"),
            pytest.param({"order_id": 1, "order_type": "SO", "reservations": ["R\u0000-1"]}, ["line 2", "NUL"],
                         id="nul-character-in-text"),
            pytest.param({"order_id": 1, "order_type": "SO", "client_id": "\udc00"}, ["line 2", "Unicode"],
                         id="lone-surrogate-in-text"),
        ],
    )
    def test_values_the_database_cannot_hold(self, loaded, database_url, tmp_path, record, fragments):
        """Values that fit JSON but not the schema are refused by line number, without a traceback."""
        path = write_jsonl(tmp_path / "big.jsonl", {"order_id": 5, "order_type": "SO"}, record)
        user_error(run_cli(loaded, "orders", "import", path), *fragments)
        assert scalar(database_url, "SELECT count(*) FROM orders") == 0


# ---------------------------------------------------------------- topics create


def _list_topics(bootstrap: str) -> set[str]:
    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(run())


class TestTopicsCreate:
    def test_create_twice(self, cli_env, settings, kafka_bootstrap):
        """topics create makes the three topics; a second run reports they exist and still exits 0."""
        names = [settings.commands_topic, settings.events_topic, settings.dlq_topic]
        first = ok(run_cli(cli_env, "topics", "create", "--partitions", "3"))
        assert sorted(first.stdout.splitlines()) == sorted(f"{n}: created" for n in names)
        assert set(names) <= _list_topics(kafka_bootstrap)
        second = ok(run_cli(cli_env, "topics", "create", "--partitions", "3"))
        assert sorted(second.stdout.splitlines()) == sorted(f"{n}: exists" for n in names)

    def test_bad_partition_count(self, cli_env):
        """A partition count below 1 is refused by the command line itself, without a traceback."""
        result = run_cli(cli_env, "topics", "create", "--partitions", "0")
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "--partitions" in result.stderr


# ---------------------------------------------------------------- rules graph


class TestRulesGraph:
    def test_mermaid_from_loaded_rules(self, loaded):
        """rules graph draws the loaded rules as Mermaid on stdout."""
        result = ok(run_cli(loaded, "rules", "graph", "--format", "mermaid"))
        assert result.stdout.startswith("stateDiagram-v2\n")
        for order_type in ("SO", "PO", "SC", "PC", "TR"):
            assert f"state {order_type} {{" in result.stdout
        assert "SO_Confirmed --> SO_CancelledByClient : client, manager, staff" in result.stdout

    def test_mermaid_one_type(self, loaded):
        """--order-type limits the drawing to one type."""
        result = ok(run_cli(loaded, "rules", "graph", "--order-type", "TR"))
        assert "state TR {" in result.stdout and "state SO {" not in result.stdout
        assert "TR_Quoted --> TR_QuoteAccepted : client, manager" in result.stdout

    def test_svg_to_file(self, loaded, tmp_path):
        """--format svg -o FILE writes a well-formed SVG with one panel per order type."""
        out = tmp_path / "graph.svg"
        result = ok(run_cli(loaded, "rules", "graph", "--format", "svg", "-o", out))
        assert result.stdout.strip() == ""
        assert str(out) in result.stderr
        root = ET.parse(out).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        groups = list(root.iter("{http://www.w3.org/2000/svg}g"))
        assert len([g for g in groups if g.get("class") == "panel"]) == 5
        assert len([g for g in groups if (g.get("class") or "").startswith("transition")]) == 37

    def test_graph_of_a_file_needs_no_database(self, plain_env, sample_rules_path, tmp_path):
        """--file draws a rules file without touching the database."""
        out = tmp_path / "so.svg"
        ok(run_cli(plain_env, "rules", "graph", "--file", sample_rules_path, "--order-type", "SO", "--format", "svg", "-o", out))
        panels = [g.get("data-order-type") for g in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}g")
                  if g.get("class") == "panel"]
        assert panels == ["SO"]

    def test_unknown_order_type(self, loaded):
        """An order type the rules do not know is one clear line listing the known ones."""
        user_error(run_cli(loaded, "rules", "graph", "--order-type", "ZZ"), "unknown order type 'ZZ'", "SO")

    def test_no_rules_loaded(self, cli_env):
        """Drawing before any rules are loaded is one clear line."""
        user_error(run_cli(cli_env, "rules", "graph"), "no rules are loaded")
