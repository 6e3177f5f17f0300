"""Flow conditions and computed values, in the Jinja2 sandbox."""

import jinja2
import pytest

from ivr.flow import expressions

ORDER = {"number": "100234", "status": "in_transit", "items": 2}


def test_a_condition_reads_flow_data_by_key_even_where_a_dict_method_has_the_name():
    assert expressions.evaluate("order.items > 1 and order.status == 'in_transit'",
                                {"order": ORDER}) is True
    assert expressions.evaluate("order['items']", {"order": ORDER}) == 2


def test_an_unknown_variable_or_field_is_an_error_not_false():
    with pytest.raises(jinja2.UndefinedError):
        expressions.evaluate("missing == 1", {})
    with pytest.raises(jinja2.UndefinedError):
        expressions.evaluate("order.missing == 1", {"order": ORDER})


def test_a_computed_value_keeps_its_type_and_a_literal_is_taken_as_it_is():
    assert expressions.value("{{ order.items + 1 }}", {"order": ORDER}) == 3
    assert expressions.value("order.items", {"order": ORDER}) == "order.items"


def test_the_sandbox_still_guards_what_is_not_flow_data():
    with pytest.raises(jinja2.exceptions.SecurityError):
        expressions.evaluate("order.__class__.__subclasses__()", {"order": ORDER})
