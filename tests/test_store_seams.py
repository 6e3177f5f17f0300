"""The store's seam: the dashboard and the reports read the call log
through what the store provides, never its SQL or its schema's names."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ivr"


def sources(pattern):
    return sorted(PACKAGE.glob(pattern))


@pytest.mark.parametrize("path", sources("server/dashboard*.py"), ids=lambda p: p.name)
def test_the_dashboard_runs_no_sql_and_parses_no_flow_yaml(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b|\.query\(|\.execute\(", text)
    assert "import yaml" not in text and "yaml." not in text


@pytest.mark.parametrize("path", sources("reports/*.py"), ids=lambda p: p.name)
def test_the_reports_name_no_index_of_the_store(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bidx_\w+|INDEXED BY", text)
    assert "flow_versions" not in text
