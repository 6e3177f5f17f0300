"""The dashboard's page: its template (HTML and CSS, no script) and the
filters it formats figures with.

The layout reflows from a phone (390 px) to a wide screen: the cards and
the chart rows wrap, tables scroll inside their own box, each chart comes
in a wide and a narrow drawing (CSS shows the one that fits), and only the
flow drawing scrolls sideways, as it is never drawn smaller than its text
stays readable.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from jinja2 import Environment

from ivr.i18n import Formats
from ivr.server.dashboard_locale import format_duration

__all__ = ["format_day", "format_duration", "format_money"]


def format_money(amount: Decimal | float | None, currency: str, fmt: Formats | None = None) -> str:
    """An amount in ``fmt``'s locale (English without one); None -> '–'."""
    if amount is None:
        return "–"
    return (fmt or Formats("en")).money(Decimal(str(amount)), currency)


def format_day(day: date, fmt: Formats | None = None) -> str:
    """A day in ``fmt``'s locale: ``Nov 18, 2026``, ``18 nov. 2026``."""
    return (fmt or Formats("en")).day(day)


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


_TEMPLATE = _ENV.from_string("""\
<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }}{% if view.flow %} · {{ view.flow }}{% endif %}</title>
<style>
  :root { --text:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#0072B2; }
  * { box-sizing: border-box; }
  html { -webkit-text-size-adjust:100%; text-size-adjust:100%; }
  body { margin:0; background:var(--bg); color:var(--text); overflow-wrap:anywhere;
         font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
  header { background:#fff; border-bottom:1px solid var(--line); }
  .bar { max-width:1320px; margin:0 auto; padding:14px 24px; display:flex; gap:12px 24px;
         align-items:center; flex-wrap:wrap; }
  h1 { font-size:20px; margin:0; font-weight:650; }
  h1 small { color:var(--muted); font-weight:400; font-size:14px; margin-left:8px; }
  form { display:flex; gap:12px; align-items:end; margin-left:auto; flex-wrap:wrap; }
  label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:3px; }
  input, select, button { font:inherit; padding:5px 8px; border:1px solid #cbd2d9;
                          border-radius:6px; background:#fff; color:var(--text); max-width:100%; }
  button { background:var(--accent); border-color:var(--accent); color:#fff; cursor:pointer;
           padding:6px 16px; }
  nav.languages { font-size:12px; display:flex; gap:8px; }
  nav.languages a { color:var(--accent); }
  nav.languages [aria-current] { color:var(--text); font-weight:600; text-decoration:none; }
  main { max-width:1320px; margin:0 auto; padding:20px 24px 40px; }
  .cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(min(100%, 190px), 1fr));
           gap:16px; }
  .card, section { background:#fff; border:1px solid var(--line); border-radius:10px; min-width:0; }
  .card { padding:14px 18px; }
  .card h2 { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted);
             margin:0 0 4px; font-weight:600; }
  .figure { font-size:28px; font-weight:650; font-variant-numeric:tabular-nums; line-height:1.15; }
  .figure small { font-size:14px; font-weight:400; color:var(--muted); }
  .change { font-size:13px; font-weight:600; color:var(--muted); font-variant-numeric:tabular-nums; }
  .note { color:var(--muted); font-size:12px; }
  section { margin-top:16px; padding:16px 20px; }
  section h2 { font-size:15px; margin:0 0 8px; }
  .row { display:grid; grid-template-columns:repeat(auto-fit, minmax(min(100%, 520px), 1fr));
         gap:16px; }
  .row section { margin-top:16px; }
  svg.chart { max-width:100%; height:auto; display:block; }
  .narrow-chart { display:none; }
  .graph { overflow:auto; max-width:100%; max-height:85vh; border:1px solid var(--line);
           border-radius:6px; }
  .graph svg { display:block; max-width:100%; height:auto; }
  .graph-canvas { position:relative; width:fit-content; }
  .graph-entry { position:absolute; width:1px; height:1px; scroll-initial-target:nearest;
                 scroll-snap-align:start center; }
  .table-box { overflow-x:auto; max-width:100%; }
  table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:6px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align:left; }
  th { font-size:12px; color:var(--muted); font-weight:600; }
  code { font-size:13px; }
  .empty { padding:40px; text-align:center; color:var(--muted); }
  ul.outcomes { list-style:none; margin:2px 0 0; padding:0; display:grid;
                grid-template-columns:auto 1fr; gap:0 8px; color:var(--muted); font-size:12px; }
  ul.outcomes li { display:contents; }
  .graph-zoom { position:absolute; opacity:0; }
  .graph-zoom + label { display:inline-flex; flex-direction:row; align-items:center; gap:6px;
                        font-size:12px; color:var(--accent); cursor:pointer; margin-bottom:6px; }
  .graph-zoom:checked ~ .graph svg { max-width:none; }
  .graph-zoom:focus-visible + label { outline:2px solid var(--accent); }
  .swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
  ul.key { list-style:none; padding:0; margin:0 0 8px; display:flex; flex-wrap:wrap; gap:4px 16px;
           font-size:12px; color:var(--muted); }
  ul.key .sample { display:inline-block; width:22px; height:12px; margin-right:6px;
                   vertical-align:-2px; border:1px solid #999; }
  @media (max-width: 700px) {
    .bar { padding:12px; }
    main { padding:12px 12px 32px; }
    section { padding:12px; }
    form { margin-left:0; }
    .wide-chart { display:none; }
    .narrow-chart { display:block; }
  }
</style>
</head>
<body>
<header><div class="bar">
  <h1>{{ t.title }}{% if view.flow %} <small>{{ view.flow }}{% if view.version %} · {{ t.version }} <code>{{ view.version[:12] }}</code>{% endif %}</small>{% endif %}</h1>
  <form method="get" action="">
    <input type="hidden" name="lang" value="{{ lang }}">
    <label>{{ t.flow }}
      <select name="flow" id="flow">
      {% for name in view.flows %}
        <option value="{{ name }}"{% if name == view.flow %} selected{% endif %}>{{ name }}</option>
      {% endfor %}
      </select>
    </label>
    <label>{{ t.since }} <input type="date" name="since" id="since" value="{{ since.isoformat() }}"></label>
    <label>{{ t.until }} <input type="date" name="until" id="until" value="{{ until.isoformat() }}"></label>
    <button type="submit">{{ t.show }}</button>
  </form>
  <a id="find-call" href="dashboard/calls">{{ t.find_call }}</a>
  <nav class="languages" aria-label="{{ t.language }}">{% for code, name in languages %}<a href="{{ link(lang=code) }}" hreflang="{{ code }}" lang="{{ code }}"{% if code == lang %} aria-current="true"{% endif %}>{{ name }}</a>{% endfor %}</nav>
</div></header>
<main>
<p class="note" id="period" data-since="{{ since.isoformat() }}" data-until="{{ until.isoformat() }}">{{ t.period }}</p>
{% if not view.flow %}
<section class="empty" id="no-calls">{{ t.no_calls_yet }}</section>
{% else %}
{% if not total.calls and t.where_calls_are %}
<section id="where-calls-are" data-first="{{ view.first_day }}" data-last="{{ view.last_day }}"><p>{{ t.where_calls_are }}</p>
<p><a id="latest-period" href="{{ link(since=latest_since, until=view.last_day) }}">{{ t.show_latest }}</a></p></section>
{% endif %}
<p class="note" id="compared-with" data-since="{{ previous[0].isoformat() }}" data-until="{{ previous[1].isoformat() }}">{{ t.compared_with }}</p>
{% macro change(name) %}{% if changes[name] is not none %}<div class="change" id="change-{{ name|replace('_', '-') }}" data-change="{{ changes[name] }}">{{ change_texts[name] }}</div>{% endif %}{% endmacro %}
<div class="cards">
  <div class="card" id="card-calls"><h2>{{ t.calls }}</h2>
    <div class="figure"><span id="calls" data-value="{{ total.calls }}">{{ count(total.calls) }}</span></div>
    {{ change("calls") }}
    <ul class="outcomes">{% for o in outcomes %}<li><span><span class="swatch" style="background:{{ outcome_colors[o] }}"></span><span id="outcome-{{ o }}" data-value="{{ total[o] }}">{{ count(total[o]) }}</span></span><span>{{ outcome_labels[o] }}</span></li>{% endfor %}</ul></div>
  <div class="card" id="card-deflection"><h2>{{ t.deflection }}</h2>
    <div class="figure"><span id="deflection-rate" data-value="{{ total.deflection_rate if total.deflection_rate is not none else '' }}">{{ pct(total.deflection_rate) }}</span></div>
    {{ change("deflection_rate") }}
    <div class="note">{{ t.deflection_note }}</div></div>
  <div class="card" id="card-repeat-adjusted"><h2>{{ t.repeat_adjusted }}</h2>
    <div class="figure"><span id="repeat-adjusted-deflection-rate" data-value="{{ total.repeat_adjusted_deflection_rate if total.repeat_adjusted_deflection_rate is not none else '' }}">{{ pct(total.repeat_adjusted_deflection_rate) }}</span></div>
    {{ change("repeat_adjusted_deflection_rate") }}
    <div class="note">{{ t.repeat_note }}</div></div>
  <div class="card" id="card-cost-saved"><h2>{{ t.cost_saved }}</h2>
    <div class="figure"><span id="cost-saved" data-value="{{ total.cost_saved }}" data-currency="{{ currency }}">{{ cost_saved }}</span></div>
    {{ change("cost_saved") }}
    <div class="note">{{ t.cost_note }}</div></div>
  <div class="card" id="card-transfers"><h2>{{ t.transfers }}</h2>
    <div class="figure">{{ t.transfers_answered }}</div>
    {{ change("transfers_answered") }}
    <div class="note" id="transfers-note">{{ t.transfers_note }}</div></div>
  <div class="card" id="card-ivr-time"><h2>{{ t.avg_ivr_time }}</h2>
    <div class="figure"><span id="avg-ivr-time" data-value="{{ total.avg_ivr_seconds if total.avg_ivr_seconds is not none else '' }}">{{ duration(total.avg_ivr_seconds) }}</span></div>
    {{ change("avg_ivr_seconds") }}
    <div class="note">{{ t.ivr_time_note }}</div></div>
</div>

<section id="timeline"><h2>{{ t.timeline }}</h2>{{ charts.timeline }}</section>
<div class="row">
  <section id="outcomes"><h2>{{ t.outcomes_by_reason }}</h2>{{ charts.outcomes }}</section>
  <section id="causes"><h2>{{ t.transfer_causes }}</h2>{{ charts.causes }}
  {% if total.failed %}<p class="note">{{ t.failed_note }}</p>{% endif %}</section>
</div>

<section id="providers"><h2>{{ t.providers_heading }}</h2>
{% if view.providers %}
<div class="table-box">
<table>
  <thead><tr><th>{{ t.provider }}</th><th>{{ t.calls }}</th><th>{{ t.self_served }}</th><th>{{ t.transferred }}</th><th>{{ t.abandoned }}</th><th>{{ t.deflection }}</th></tr></thead>
  <tbody>
  {% for row in view.providers %}
    <tr data-provider="{{ row.provider or '' }}" data-calls="{{ row.calls }}">
      <td>{{ row.provider or t.unknown_provider }}</td><td>{{ count(row.calls) }}</td>
      <td>{{ count(row.self_served) }}</td><td>{{ count(row.transferred) }}</td>
      <td>{{ count(row.abandoned) }}</td><td>{{ pct(row.deflection_rate) }}</td></tr>
  {% endfor %}
  </tbody>
</table>
</div>
{% else %}<p class="note">{{ t.no_calls_in_period }}</p>{% endif %}
</section>

<section id="flow-graph"><h2>{{ t.flow_heading }}</h2>
{% if view.graph_svg %}<input type="checkbox" id="graph-zoom" class="graph-zoom"><label for="graph-zoom">{{ t.full_size }}</label>
<p class="note">{{ t.graph_note }}</p>
<ul class="key" id="graph-key">{% for colour, border, text in graph_key %}<li><span class="sample" style="background:{{ colour }};{{ border }}"></span>{{ text }}</li>{% endfor %}</ul>
<div class="graph" data-drawn-by="{{ view.graph_drawn_by }}">{{ view.graph_svg }}</div>
{% elif not view.version %}<p class="note">{{ t.no_calls_in_period }}</p>
{% else %}<p class="note">{{ t.cannot_draw }}</p>{% endif %}
</section>

<section id="worst-nodes"><h2>{{ t.where_callers_leave }}</h2>
{% if worst %}
<div class="table-box">
<table>
  <thead><tr>{% for heading in t.worst_headings %}<th>{{ heading }}</th>{% endfor %}</tr></thead>
  <tbody>
  {% for row in worst %}
    <tr data-node="{{ row.node }}" data-reached="{{ row.reached }}" data-dropped="{{ row.dropped }}" data-drop-off-rate="{{ row.drop_off_rate }}">
      <td><code>{{ row.node }}</code></td><td>{{ row.kind }}</td><td>{{ count(row.reached) }}</td>
      <td>{{ count(row.hung_up) }}</td><td>{{ count(row.transferred) }}</td>
      <td>{{ count(row.dropped) }}</td><td>{{ pct(row.drop_off_rate) }}</td></tr>
  {% endfor %}
  </tbody>
</table>
</div>
{% else %}<p class="note">{{ t.nobody_left }}</p>{% endif %}
</section>
{% endif %}
</main>
</body>
</html>
""")
