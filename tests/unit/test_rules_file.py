"""The rules YAML of DESIGN §5.1: the good sample parses, every refusal is one line naming the entry."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from service.domain.model import Status, Transition
from service.contract.rules_file import RulesFileError, load_rules_file, parse_rules

SAMPLE = Path(__file__).resolve().parents[2] / "service" / "devkit" / "samples" / "rules.yaml"

BASE = {
    "override_roles": ["manager", "system"],
    "statuses": [
        {"id": 1, "code": "Draft", "name": "Draft", "order_types": ["SO", "PO"], "initial": True},
        {"id": 2, "code": "Confirmed", "name": "Confirmed", "order_types": ["SO", "PO"]},
        {"id": 21, "code": "Cancelled", "name": "Cancelled", "order_types": ["SO"], "cancelled": True, "can_override_to": True},
        {"id": 30, "code": "Invoiced", "name": "Invoiced", "order_types": ["SO"], "invoiced": True},
        {"id": 40, "code": "Archived", "name": "Archived", "order_types": ["SO"], "hidden": True},
    ],
    "transitions": [
        {"order_type": "SO", "from": "Draft", "to": "Confirmed", "roles": ["staff", "manager", "system"]},
        {"order_type": "SO", "from": "Confirmed", "to": "Cancelled", "roles": ["client", "staff", "manager"]},
        {"order_type": "PO", "from": "Draft", "to": "Confirmed", "roles": ["staff"]},
    ],
}


def text_of(mutate=None) -> str:
    """The base document as YAML, after `mutate(doc)` edited a deep copy of it."""
    doc = copy.deepcopy(BASE)
    if mutate is not None:
        mutate(doc)
    return yaml.safe_dump(doc, sort_keys=False)


def _add_status(**entry):
    return lambda doc: doc["statuses"].append(entry)


def _add_transition(**entry):
    return lambda doc: doc["transitions"].append(entry)


def _set(path: tuple, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


# ---------------------------------------------------------------- good documents


class TestGoodFiles:
    def test_sample_parses(self):
        """The shipped sample rules file is accepted and matches what it declares."""
        rules = load_rules_file(SAMPLE)
        assert rules.order_types == {"SO", "PO", "SC", "PC", "TR"}
        assert rules.override_roles == {"manager", "system"}
        assert rules.status("CancelledByClient").cancelled and rules.status(21).can_override_to
        assert rules.status("Archived").hidden
        assert rules.initial_status("TR").code == "Requested"
        assert rules.edge_roles("SO", 1, 2) == {"staff", "manager", "system"}  # Draft -> Confirmed
        assert rules.edge_roles("TR", 106, 108) == {"manager"}  # ResultsAccepted -> Closed
        raw = yaml.safe_load(SAMPLE.read_text())
        assert len(rules.statuses) == len(raw["statuses"])
        assert len(rules.transitions) == len(raw["transitions"])

    def test_base_document_builds_the_rule_set(self):
        """Statuses and transitions become domain objects; transition ends given by code resolve to ids."""
        rules = parse_rules(text_of())
        assert rules.status(1) == Status(1, "Draft", "Draft", frozenset({"SO", "PO"}), initial=True)
        assert Transition("SO", 2, 21, frozenset({"client", "staff", "manager"})) in rules.transitions
        assert rules.version == 0

    def test_flags_default_to_false(self):
        """initial, cancelled, invoiced, hidden and can_override_to are false unless set."""
        confirmed = parse_rules(text_of()).status("Confirmed")
        assert not any(
            (confirmed.initial, confirmed.cancelled, confirmed.invoiced, confirmed.hidden, confirmed.can_override_to)
        )

    def test_transition_ends_by_numeric_id(self):
        """A transition may name its ends by numeric id as well as by code."""
        rules = parse_rules(text_of(_add_transition(order_type="SO", **{"from": 21, "to": 1}, roles=["manager"])))
        assert rules.edge_roles("SO", 21, 1) == {"manager"}

    def test_optional_sections_default(self):
        """override_roles and transitions may be left out: nobody overrides, no edges."""
        rules = parse_rules(text_of(lambda doc: (doc.pop("override_roles"), doc.pop("transitions"))))
        assert rules.override_roles == frozenset() and rules.transitions == ()

    def test_one_flag_per_type_across_different_types(self):
        """Two initial statuses are fine when they serve different order types."""
        rules = parse_rules(text_of(_add_status(id=100, code="Requested", name="Requested", order_types=["TR"], initial=True)))
        assert rules.initial_status("TR").code == "Requested" and rules.initial_status("SO").code == "Draft"


# ---------------------------------------------------------------- refusals

REFUSALS = [
    # DESIGN §5.1: duplicate ids / codes
    pytest.param(
        _add_status(id=2, code="Other", name="Other", order_types=["SO"]), ["duplicate id", "2"], id="duplicate-id"
    ),
    pytest.param(
        _add_status(id=3, code="Confirmed", name="Again", order_types=["SO"]), ["duplicate code", "Confirmed"],
        id="duplicate-code",
    ),
    # unknown codes in transitions
    pytest.param(
        _add_transition(order_type="SO", **{"from": "Nowhere"}, to="Confirmed", roles=["staff"]),
        ["transitions[3]", "unknown status", "Nowhere"], id="unknown-from-code",
    ),
    pytest.param(
        _add_transition(order_type="SO", **{"from": "Draft"}, to="Shipped", roles=["staff"]),
        ["transitions[3]", "unknown status", "Shipped"], id="unknown-to-code",
    ),
    pytest.param(
        _add_transition(order_type="SO", **{"from": 1, "to": 99}, roles=["staff"]),
        ["transitions[3]", "unknown status", "99"], id="unknown-to-id",
    ),
    # unknown order types in transitions
    pytest.param(
        _add_transition(order_type="XX", **{"from": "Draft"}, to="Confirmed", roles=["staff"]),
        ["transitions[3]", "unknown order type", "XX"], id="unknown-order-type",
    ),
    pytest.param(
        _add_transition(order_type="PO", **{"from": "Confirmed"}, to="Cancelled", roles=["staff"]),
        ["transitions[3]", "Cancelled", "not available to order type PO"], id="status-not-of-that-type",
    ),
    # unknown roles
    pytest.param(
        _add_transition(order_type="SO", **{"from": "Draft"}, to="Cancelled", roles=["staff", "admin"]),
        ["transitions[3]", "unknown role", "admin"], id="unknown-role-in-transition",
    ),
    pytest.param(_set(("override_roles",), ["manager", "root"]), ["override_roles", "unknown role", "root"],
                 id="unknown-override-role"),
    # one initial / cancelled / invoiced per order type
    pytest.param(
        _add_status(id=5, code="New", name="New", order_types=["PO"], initial=True),
        ["more than one initial", "PO", "Draft", "New"], id="two-initial",
    ),
    pytest.param(
        _add_status(id=22, code="Voided", name="Voided", order_types=["SO"], cancelled=True),
        ["more than one cancelled", "SO", "Cancelled", "Voided"], id="two-cancelled",
    ),
    pytest.param(
        _add_status(id=31, code="Billed", name="Billed", order_types=["PO", "SO"], invoiced=True),
        ["more than one invoiced", "SO", "Invoiced", "Billed"], id="two-invoiced",
    ),
    # further refusals of the same kind
    pytest.param(
        _add_transition(order_type="SO", **{"from": "Draft"}, to="Confirmed", roles=["manager"]),
        ["transitions[3]", "duplicate transition"], id="duplicate-transition",
    ),
    pytest.param(
        _add_transition(order_type="SO", **{"from": "Draft"}, to=1, roles=["manager"]),
        ["transitions[3]", "must change the status"], id="self-transition",
    ),
    pytest.param(_set(("statuses", 1, "intial"), True), ["statuses.1.intial"], id="misspelt-flag"),
    pytest.param(_set(("statuses", 1, "id"), "two"), ["statuses.1.id"], id="id-not-an-integer"),
    pytest.param(_set(("statuses", 1, "order_types"), []), ["statuses.1.order_types"], id="status-without-types"),
    pytest.param(lambda doc: doc["statuses"][0].pop("code"), ["statuses.0.code"], id="missing-code"),
    pytest.param(_set(("transitions", 0, "roles"), []), ["transitions.0.roles"], id="transition-without-roles"),
    pytest.param(lambda doc: doc.pop("statuses"), ["statuses"], id="missing-statuses"),
    pytest.param(_set(("statuses",), []), ["statuses"], id="no-statuses"),
    pytest.param(_set(("status_list",), []), ["status_list"], id="unknown-top-level-key"),
]


class TestRefusals:
    @pytest.mark.parametrize(("mutate", "fragments"), REFUSALS)
    def test_refusal_is_one_line_naming_the_entry(self, mutate, fragments):
        """The broken document is refused with a single-line RulesFileError that names the offending entry."""
        with pytest.raises(RulesFileError) as info:
            parse_rules(text_of(mutate))
        message = str(info.value)
        assert "\n" not in message and message.strip() == message
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            pytest.param("statuses: [\n", "not valid YAML at line 2", id="unclosed-flow-sequence"),
            pytest.param("statuses:\n  - {id: 1\n", "not valid YAML at line 3", id="unclosed-flow-mapping"),
            pytest.param("a: b: c\n", "not valid YAML at line 1", id="nested-mapping-on-one-line"),
            pytest.param("\tstatuses: []\n", "not valid YAML at line 1", id="tab-indent"),
        ],
    )
    def test_invalid_yaml(self, text, fragment):
        """Text that is not YAML is refused with one line giving the line number."""
        with pytest.raises(RulesFileError) as info:
            parse_rules(text)
        assert fragment in str(info.value) and "\n" not in str(info.value)

    @pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string\n", "42\n"], ids=["empty", "list", "string", "number"])
    def test_document_must_be_a_mapping(self, text):
        """A YAML document that is not a mapping is refused with one line."""
        with pytest.raises(RulesFileError, match="must be a mapping"):
            parse_rules(text)

    def test_unreadable_file(self, tmp_path):
        """A missing file is a RulesFileError naming the path, not an OSError."""
        missing = tmp_path / "nope.yaml"
        with pytest.raises(RulesFileError, match="cannot read .*nope.yaml"):
            load_rules_file(missing)
