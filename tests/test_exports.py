"""The package's public surface: what ``from ivr import ...`` offers."""

import ivr
from ivr.engine.step import step
from ivr.flow.loader import check_flow, flow_from_source, load_flow
from ivr.flow.model import Flow
from ivr.flow.problems import FlowError, Problem


def test_all_names_the_public_surface():
    assert sorted(ivr.__all__) == [
        "Flow", "FlowError", "Problem", "check_flow", "flow_from_source", "load_flow", "step"]


def test_each_public_name_is_the_implementation_itself():
    assert (ivr.Flow, ivr.FlowError, ivr.Problem) == (Flow, FlowError, Problem)
    assert (ivr.check_flow, ivr.flow_from_source, ivr.load_flow, ivr.step) == (
        check_flow, flow_from_source, load_flow, step)


def test_a_star_import_brings_exactly_the_public_names():
    namespace: dict = {}
    exec("from ivr import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(ivr.__all__)
