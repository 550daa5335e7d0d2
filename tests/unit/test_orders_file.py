"""The orders JSON lines of DESIGN §5.2: good lines parse, every refusal names its line number."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from service.contract.orders_file import OrdersFileError, parse_orders
from service.contract.rules_file import load_rules_file, parse_rules

SAMPLES = Path(__file__).resolve().parents[2] / "service" / "devkit" / "samples"

RULES = parse_rules(
    """
override_roles: [manager]
statuses:
  - {id: 1,  code: Draft,     name: Draft,     order_types: [SO, PO], initial: true}
  - {id: 2,  code: Confirmed, name: Confirmed, order_types: [SO, PO]}
  - {id: 21, code: Cancelled, name: Cancelled, order_types: [SO], cancelled: true}
  - {id: 8,  code: Received,  name: Received,  order_types: [PO]}
  - {id: 50, code: Open,      name: Open,      order_types: [XR]}
transitions:
  - {order_type: SO, from: Draft, to: Confirmed, roles: [staff]}
"""
)

FULL = {
    "order_id": 1029,
    "order_type": "SO",
    "status": "Confirmed",
    "client_id": "c-1",
    "contacts": [
        {"email": "ann@example.com", "name": "Ann", "kind": "client"},
        {"email": "pm@example.com", "kind": "stakeholder"},
    ],
    "payments_total": "0.00",
    "goods_out_notes": ["GON-7"],
    "reservations": ["R-1"],
    "coupons": ["SPRING10"],
}


def line(**fields) -> str:
    return json.dumps(fields)


def parse_one(**fields):
    [(record, status_id)] = parse_orders([line(**fields)], RULES)
    return record, status_id


# ---------------------------------------------------------------- good lines


class TestGoodLines:
    def test_full_line(self):
        """Every field of the §5.2 example is read, and the status code is resolved to its id."""
        record, status_id = parse_one(**FULL)
        assert status_id == 2
        assert (record.order_id, record.order_type, record.client_id) == (1029, "SO", "c-1")
        assert [(c.email, c.name, c.kind) for c in record.contacts] == [
            ("ann@example.com", "Ann", "client"),
            ("pm@example.com", None, "stakeholder"),
        ]
        assert record.payments_total == Decimal("0.00")
        assert (record.goods_out_notes, record.reservations, record.coupons) == (["GON-7"], ["R-1"], ["SPRING10"])

    def test_minimal_line_defaults(self):
        """Only order_id and order_type are required; no status means None (the type's initial on insert)."""
        record, status_id = parse_one(order_id=7, order_type="PO")
        assert status_id is None
        assert record.client_id is None and record.contacts == []
        assert record.payments_total == Decimal("0")
        assert record.goods_out_notes == record.reservations == record.coupons == []

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            pytest.param("Cancelled", 21, id="code"),
            pytest.param(21, 21, id="id"),
            pytest.param("21", 21, id="digit-string"),
            pytest.param(None, None, id="null-means-default"),
        ],
    )
    def test_status_by_code_id_or_digits(self, status, expected):
        """`status` is a code or an id; null is the same as leaving it out."""
        assert parse_one(order_id=1, order_type="SO", status=status)[1] == expected

    @pytest.mark.parametrize(
        ("payments", "expected"),
        [pytest.param("25.50", Decimal("25.50"), id="string"), pytest.param(3, Decimal(3), id="int"),
         pytest.param("-4.00", Decimal("-4.00"), id="refund")],
    )
    def test_payments_total_is_a_decimal(self, payments, expected):
        """payments_total is read as an exact decimal."""
        assert parse_one(order_id=1, order_type="SO", payments_total=payments)[0].payments_total == expected

    def test_largest_storable_values(self):
        """The largest bigint order id and the largest numeric(18, 4) payment are accepted."""
        record, _ = parse_one(order_id=2**63 - 1, order_type="SO", payments_total="-99999999999999.9999")
        assert record.order_id == 2**63 - 1 and record.payments_total == Decimal("-99999999999999.9999")

    def test_contact_kind_defaults_to_client(self):
        """A contact without kind is a client contact."""
        record, _ = parse_one(order_id=1, order_type="SO", contacts=[{"email": "x@example.com"}])
        assert record.contacts[0].kind == "client"

    def test_unknown_fields_are_ignored(self):
        """Extra fields on a line or a contact are ignored (forward compatible)."""
        record, _ = parse_one(order_id=1, order_type="SO", colour="red", contacts=[{"email": "a@b.c", "phone": "1"}])
        assert record.order_id == 1 and record.contacts[0].email == "a@b.c"

    def test_blank_lines_ignored(self):
        """Empty and whitespace-only lines are skipped; the others keep their order."""
        lines = ["", line(order_id=1, order_type="SO"), "   ", "\t", line(order_id=2, order_type="PO"), ""]
        assert [r.order_id for r, _ in parse_orders(lines, RULES)] == [1, 2]

    def test_empty_file(self):
        """A file with no orders parses to nothing."""
        assert parse_orders([], RULES) == [] and parse_orders(["", " "], RULES) == []

    def test_sample_orders_parse_against_sample_rules(self):
        """The shipped sample orders are valid against the shipped sample rules."""
        rules = load_rules_file(SAMPLES / "rules.yaml")
        parsed = parse_orders((SAMPLES / "orders.jsonl").read_text().splitlines(), rules)
        by_id = {r.order_id: status_id for r, status_id in parsed}
        assert len(parsed) == 10
        assert by_id[1029] == 2 and by_id[1033] is None and by_id[3001] == 101


# ---------------------------------------------------------------- refusals


REFUSALS = [
    pytest.param("{not json", ["line 1", "not valid JSON"], id="bad-json"),
    pytest.param('{"order_id": 1, "order_type": "SO"', ["line 1", "not valid JSON"], id="truncated-json"),
    pytest.param("[1, 2]", ["line 1", "record"], id="not-an-object"),
    pytest.param("null", ["line 1"], id="json-null"),
    pytest.param(line(order_type="SO"), ["line 1", "order_id", "Field required"], id="missing-order-id"),
    pytest.param(line(order_id=1), ["line 1", "order_type", "Field required"], id="missing-order-type"),
    pytest.param(line(order_id=0, order_type="SO"), ["line 1", "order_id"], id="order-id-zero"),
    pytest.param(line(order_id="abc", order_type="SO"), ["line 1", "order_id"], id="order-id-not-a-number"),
    pytest.param(line(order_id=1, order_type="ZZ"), ["line 1", "order 1", "unknown order type", "ZZ"], id="unknown-order-type"),
    pytest.param(line(order_id=1, order_type="SO", status="Shipped"), ["line 1", "order 1", "unknown status", "Shipped"],
                 id="unknown-status-code"),
    pytest.param(line(order_id=1, order_type="SO", status=99), ["line 1", "order 1", "unknown status", "99"],
                 id="unknown-status-id"),
    pytest.param(line(order_id=1, order_type="SO", status="Received"), ["line 1", "Received", "not available to SO"],
                 id="status-of-another-type"),
    pytest.param(line(order_id=1, order_type="XR"), ["line 1", "no status given", "XR has no initial status"],
                 id="type-without-initial-status"),
    pytest.param(line(order_id=1, order_type="SO", payments_total="lots"), ["line 1", "payments_total"], id="bad-payments"),
    pytest.param(line(order_id=1, order_type="SO", payments_total="NaN"), ["line 1", "payments_total"], id="nan-payments"),
    pytest.param(line(order_id=1, order_type="SO", contacts=[{"name": "Ann"}]), ["line 1", "contacts.0.email"],
                 id="contact-without-email"),
    pytest.param(line(order_id=1, order_type="SO", contacts=[{"email": "not-an-address"}]), ["line 1", "contacts.0.email"],
                 id="contact-bad-email"),
    pytest.param(line(order_id=1, order_type="SO", contacts=[{"email": "a@b.c", "kind": "boss"}]),
                 ["line 1", "contacts.0.kind"], id="contact-bad-kind"),
    pytest.param(line(order_id=1, order_type="SO", contacts=[{"email": "a@b.c", "name": "A\nBcc: x@y.z"}]),
                 ["line 1", "contacts.0.name"], id="contact-name-with-newline"),
    pytest.param(line(order_id=1, order_type="SO", reservations="R-1"), ["line 1", "reservations"], id="reservations-not-a-list"),
    # values JSON can carry but Postgres cannot store: refused here, with the line number
    pytest.param(line(order_id=2**63, order_type="SO"), ["line 1", "order_id"], id="order-id-beyond-bigint"),
    pytest.param(line(order_id=1, order_type="SO", payments_total="1e14"), ["line 1", "payments_total", "10^14"],
                 id="payments-beyond-numeric-18-4"),
    pytest.param(line(order_id=1, order_type="SO", payments_total="-1e30"), ["line 1", "payments_total", "10^14"],
                 id="payments-far-beyond-numeric-18-4"),
    pytest.param(line(order_id=1, order_type="SO", payments_total="99999999999999.99995"), ["line 1", "payments_total"],
                 id="payments-rounding-up-beyond-numeric-18-4"),
    pytest.param(line(order_id=1, order_type="SO", coupons=["A\u0000B"]), ["line 1", "NUL"], id="nul-in-text"),
    pytest.param(line(order_id=1, order_type="SO", contacts=[{"email": "a@b.c", "name": "\ud800"}]),
                 ["line 1", "valid Unicode"], id="lone-surrogate-in-text"),
]


class TestRefusals:
    @pytest.mark.parametrize(("text", "fragments"), REFUSALS)
    def test_refusal_names_the_line(self, text, fragments):
        """A bad line is refused with a single-line OrdersFileError naming the line number and the problem."""
        with pytest.raises(OrdersFileError) as info:
            parse_orders([text], RULES)
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"

    def test_line_number_counts_blank_lines(self):
        """The reported number is the physical line in the file, blank lines included."""
        lines = [line(order_id=1, order_type="SO"), "", line(order_id=2, order_type="SO"), "{oops"]
        with pytest.raises(OrdersFileError, match=r"^line 4: not valid JSON"):
            parse_orders(lines, RULES)

    def test_first_bad_line_is_reported(self):
        """With several bad lines the first one is named (lines before it are fine)."""
        lines = [line(order_id=1, order_type="SO"), line(order_id=2, order_type="SO"),
                 line(order_id=3, order_type="SO", status="Nope"), "{oops"]
        with pytest.raises(OrdersFileError, match=r"^line 3: order 3: unknown status 'Nope'"):
            parse_orders(lines, RULES)
