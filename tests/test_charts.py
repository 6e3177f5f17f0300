"""The dashboard's SVG charts: well-formed, every value readable back, drawn to scale."""

import xml.etree.ElementTree as ET

import pytest

from ivr.reports.charts import (
    Bar,
    Segment,
    Series,
    bar_chart,
    format_count,
    format_percent,
    line_chart,
    nice_ticks,
    stacked_bar_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything not well-formed
    assert root.tag == SVG + "svg"
    return root


def all_of(root, tag, **data):
    found = root.iter(SVG + tag)
    return [e for e in found if all(e.get(f"data-{k}") == v for k, v in data.items())]


def texts(root) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


@pytest.mark.parametrize("maximum, ticks", [
    (7, [0, 2, 4, 6, 8]),
    (23, [0, 10, 20, 30]),
    (100, [0, 25, 50, 75, 100]),
    (1234, [0, 500, 1000, 1500]),
    (3, [0, 1, 2, 3]),
    (0.3, [0, 0.1, 0.2, 0.3]),
    (0, [0, 1]),
])
def test_nice_ticks_cover_the_maximum_in_round_equal_steps(maximum, ticks):
    assert nice_ticks(maximum) == pytest.approx(ticks)


def test_counts_and_rates_are_formatted_for_people():
    assert format_count(1234) == "1,234"
    assert format_count(2.5) == "2.5"
    assert format_percent(0.5) == "50.0 %"
    assert format_percent(2 / 3, 0) == "67 %"
    assert format_percent(None) == "–"


def rate_chart(values_a, values_b, labels=None):
    labels = labels or [f"d{i}" for i in range(len(values_a))]
    return parse(line_chart(labels, [Series("a", "Deflection", values_a),
                                     Series("b", "Adjusted", values_b, dashed=True)],
                            title="Deflection by day", x_keys=[f"k{i}" for i in range(len(labels))]))


def test_a_line_chart_has_a_point_per_value_with_its_series_x_and_value():
    root = rate_chart([0.5, 0.25, 1.0], [0.4, None, 0.75])
    points = [(c.get("data-series"), c.get("data-x"), float(c.get("data-value")))
              for c in root.iter(SVG + "circle")]
    assert points == [("a", "k0", 0.5), ("a", "k1", 0.25), ("a", "k2", 1.0),
                      ("b", "k0", 0.4), ("b", "k2", 0.75)]
    assert "Deflection" in texts(root) and "Adjusted" in texts(root)


def test_a_line_chart_draws_rates_to_scale_between_its_0_and_100_percent_gridlines():
    root = rate_chart([0.0, 0.5, 1.0, 0.75], [None] * 4)
    grid = {float(line.get("data-tick")): float(line.get("y1"))
            for line in root.iter(SVG + "line") if line.get("data-tick") is not None}
    assert sorted(grid) == [0, 0.25, 0.5, 0.75, 1.0]
    assert ["0 %", "25 %", "50 %", "75 %", "100 %"] == [t for t in texts(root) if t.endswith("%")]
    zero, full = grid[0], grid[1.0]
    for circle in root.iter(SVG + "circle"):
        value = float(circle.get("data-value"))
        assert float(circle.get("cy")) == pytest.approx(zero + (full - zero) * value, abs=0.1)
    xs = [float(c.get("cx")) for c in root.iter(SVG + "circle")]
    steps = {round(b - a, 1) for a, b in zip(xs, xs[1:])}
    assert len(steps) == 1 and steps.pop() > 0  # evenly spaced, left to right


def test_a_missing_value_breaks_the_line_instead_of_joining_across_it():
    root = rate_chart([0.5, 0.6, None, 0.7, 0.8], [None] * 5)
    [series_a] = all_of(root, "g", series="a")
    lines = [p.get("points").split() for p in series_a.iter(SVG + "polyline")]
    assert [len(points) for points in lines] == [2, 2]


def test_a_line_chart_with_counts_uses_round_ticks_above_the_maximum():
    root = parse(line_chart(["a", "b"], [Series("calls", "Calls", [3, 17])], title="Calls",
                            y_max=17, y_format=format_count))
    ticks = [float(line.get("data-tick")) for line in root.iter(SVG + "line")
             if line.get("data-tick") is not None]
    assert ticks == [0, 5, 10, 15, 20]


def test_a_line_chart_without_any_value_says_so():
    root = rate_chart([None, None], [None, None])
    assert "No data" in texts(root)
    assert not list(root.iter(SVG + "circle"))


def test_a_series_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="one value per x label"):
        line_chart(["a", "b"], [Series("s", "S", [0.1])], title="t")


OUTCOMES = [Segment("self_served", "Self-served", "#009E73"),
            Segment("transferred", "Transferred", "#0072B2"),
            Segment("abandoned", "Abandoned", "#E69F00")]


def test_stacked_bars_carry_each_part_and_the_row_total():
    root = parse(stacked_bar_chart(
        [("order_status", "order status"), ("return_refund", "return refund")], OUTCOMES,
        {"order_status": {"self_served": 12, "transferred": 3, "abandoned": 2},
         "return_refund": {"transferred": 5}}, title="Outcomes by reason"))
    parts = {(r.get("data-category"), r.get("data-segment")): float(r.get("data-value"))
             for r in root.iter(SVG + "rect") if r.get("data-segment")}
    assert parts[("order_status", "self_served")] == 12
    assert parts[("return_refund", "self_served")] == 0
    assert [(g.get("data-category"), g.get("data-total")) for g in all_of(root, "g")
            if g.get("data-total")] == [("order_status", "17"), ("return_refund", "5")]
    assert {"order status", "return refund", "17", "5", "Self-served"} <= set(texts(root))


def test_stacked_bars_are_drawn_to_one_scale_part_after_part():
    root = parse(stacked_bar_chart(
        [("a", "A"), ("b", "B")], OUTCOMES,
        {"a": {"self_served": 12, "transferred": 3, "abandoned": 2}, "b": {"transferred": 5}},
        title="t"))
    rects = [r for r in root.iter(SVG + "rect") if r.get("data-segment")]
    scales = {round(float(r.get("width")) / float(r.get("data-value")), 6)
              for r in rects if float(r.get("data-value"))}
    assert len(scales) == 1  # width proportional to value, the same for every part
    row_a = [r for r in rects if r.get("data-category") == "a"]
    for left, right in zip(row_a, row_a[1:]):
        assert float(right.get("x")) == pytest.approx(float(left.get("x")) + float(left.get("width")),
                                                      abs=0.02)
    grid = {float(line.get("data-tick")): float(line.get("x1")) for line in root.iter(SVG + "line")
            if line.get("data-tick") is not None}
    assert sorted(grid) == [0, 5, 10, 15, 20]
    end_of_a = float(row_a[-1].get("x")) + float(row_a[-1].get("width"))
    assert end_of_a == pytest.approx(grid[0] + (grid[20] - grid[0]) * 17 / 20, abs=0.05)


def test_bars_are_proportional_to_their_values_with_the_value_written():
    root = parse(bar_chart([Bar("caller_asked", "Caller asked", 8), Bar("no_input", "No input", 2),
                            Bar("closed", "Closed", 0)], title="Transfer causes"))
    rects = {r.get("data-key"): r for r in root.iter(SVG + "rect")}
    assert {k: float(r.get("data-value")) for k, r in rects.items()} == {
        "caller_asked": 8, "no_input": 2, "closed": 0}
    assert float(rects["caller_asked"].get("width")) == pytest.approx(
        4 * float(rects["no_input"].get("width")))
    assert float(rects["closed"].get("width")) == 0
    assert {"Caller asked", "8", "2"} <= set(texts(root))


def test_empty_bar_charts_say_so():
    root = parse(bar_chart([], title="Transfer causes", empty_text="No transfers in this period"))
    assert "No transfers in this period" in texts(root)
    root = parse(stacked_bar_chart([], OUTCOMES, {}, title="t", empty_text="Nothing"))
    assert "Nothing" in texts(root)


def test_every_text_is_escaped():
    hostile = '<script>alert("x")</script> & \'quotes\''
    svgs = [
        line_chart([hostile], [Series(hostile, hostile, [0.5], color='red" onload="x')],
                   title=hostile, x_keys=[hostile]),
        stacked_bar_chart([(hostile, hostile)], [Segment(hostile, hostile, "#000")],
                          {hostile: {hostile: 3}}, title=hostile),
        bar_chart([Bar(hostile, hostile, 3, hint=hostile)], title=hostile),
    ]
    for svg in svgs:
        root = parse(svg)
        assert not list(root.iter(SVG + "script"))
        assert not [k for e in root.iter() for k in e.attrib if k.startswith("on")]
        # The text comes back intact once parsed (clipped labels aside).
        assert any(hostile in "".join(e.itertext()) for e in root.iter())
        marked = [e for e in root.iter() if any(k.startswith("data-") and v == hostile
                                                for k, v in e.attrib.items())]
        assert marked


def test_a_bar_label_can_carry_a_longer_tooltip():
    root = parse(stacked_bar_chart([("order_status", "order status")], OUTCOMES,
                                   {"order_status": {"self_served": 1}}, title="t",
                                   hints={"order_status": "Where is my order"}))
    [label] = [t for t in root.iter(SVG + "text") if t.get("class") == "label"]
    assert label.find(SVG + "title").text == "Where is my order"
    assert "".join(label.itertext()).endswith("order status")
