"""The dashboard's page: its template (HTML, CSS and script) and the filters
it formats figures with."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from babel.numbers import format_currency
from jinja2 import Environment


def format_duration(seconds: float | None) -> str:
    """75.4 -> '1 min 15 s'; None -> '–'."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"


def format_money(amount: Decimal | float | None, currency: str) -> str:
    if amount is None:
        return "–"
    return format_currency(Decimal(str(amount)), currency, locale="en_GB")


def format_day(day: date) -> str:
    return f"{day.day} {day.strftime('%b %Y')}"


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


_TEMPLATE = _ENV.from_string("""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>IVR dashboard{% if view.flow %} · {{ view.flow }}{% endif %}</title>
<style>
  :root { --text:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#0072B2; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text);
         font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
  header { background:#fff; border-bottom:1px solid var(--line); }
  .bar { max-width:1320px; margin:0 auto; padding:14px 24px; display:flex; gap:24px;
         align-items:center; flex-wrap:wrap; }
  h1 { font-size:20px; margin:0; font-weight:650; }
  h1 small { color:var(--muted); font-weight:400; font-size:14px; margin-left:8px; }
  form { display:flex; gap:12px; align-items:end; margin-left:auto; flex-wrap:wrap; }
  label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:3px; }
  input, select, button { font:inherit; padding:5px 8px; border:1px solid #cbd2d9;
                          border-radius:6px; background:#fff; color:var(--text); }
  button { background:var(--accent); border-color:var(--accent); color:#fff; cursor:pointer;
           padding:6px 16px; }
  main { max-width:1320px; margin:0 auto; padding:20px 24px 40px; }
  .cards { display:grid; grid-template-columns:1.4fr repeat(5, 1fr); gap:16px; }
  .card, section { background:#fff; border:1px solid var(--line); border-radius:10px; }
  .card { padding:14px 18px; }
  .cards .card:first-child { min-width:0; }
  .card h2 { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted);
             margin:0 0 4px; font-weight:600; }
  .figure { font-size:30px; font-weight:650; font-variant-numeric:tabular-nums; }
  .note { color:var(--muted); font-size:12px; }
  section { margin-top:16px; padding:16px 20px; }
  section h2 { font-size:15px; margin:0 0 8px; }
  .row { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
  .row section { margin-top:16px; }
  svg.chart, .graph svg { max-width:100%; height:auto; display:block; }
  .graph { overflow-x:auto; }
  table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:6px 10px; border-bottom:1px solid var(--line); }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align:left; }
  th { font-size:12px; color:var(--muted); font-weight:600; }
  code { font-size:13px; }
  .empty { padding:40px; text-align:center; color:var(--muted); }
  ul.outcomes { list-style:none; margin:2px 0 0; padding:0; display:grid;
                grid-template-columns:auto auto; gap:0 12px; color:var(--muted); font-size:12px; }
  .graph-zoom { position:absolute; opacity:0; }
  .graph-zoom + label { display:inline-flex; flex-direction:row; align-items:center; gap:6px;
                        font-size:12px; color:var(--accent); cursor:pointer; margin-bottom:6px; }
  .graph-zoom:checked ~ .graph svg { max-width:none; }
  .graph-zoom:focus-visible + label { outline:2px solid var(--accent); }
  .swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
</style>
</head>
<body>
<header><div class="bar">
  <h1>IVR dashboard{% if view.flow %} <small>{{ view.flow }}{% if view.version %} · version <code>{{ view.version[:12] }}</code>{% endif %}</small>{% endif %}</h1>
  <form method="get" action="">
    <label>Flow
      <select name="flow" id="flow">
      {% for name in view.flows %}
        <option value="{{ name }}"{% if name == view.flow %} selected{% endif %}>{{ name }}</option>
      {% endfor %}
      </select>
    </label>
    <label>From <input type="date" name="since" id="since" value="{{ since.isoformat() }}"></label>
    <label>To <input type="date" name="until" id="until" value="{{ until.isoformat() }}"></label>
    <button type="submit">Show</button>
  </form>
</div></header>
<main>
<p class="note" id="period" data-since="{{ since.isoformat() }}" data-until="{{ until.isoformat() }}">{{ period }} ({{ view.query.days }} day{{ "s" if view.query.days > 1 }}, both included) · calls that ended, in the flow's local time</p>
{% if not view.flow %}
<section class="empty" id="no-calls">No calls logged yet. Figures appear here once calls have ended.</section>
{% else %}
<div class="cards">
  <div class="card"><h2>Calls</h2>
    <div class="figure"><span id="calls" data-value="{{ total.calls }}">{{ count(total.calls) }}</span></div>
    <ul class="outcomes">{% for o in ["self_served", "transferred", "abandoned", "failed"] %}<li><span class="swatch" style="background:{{ outcome_colors[o] }}"></span><span id="outcome-{{ o }}" data-value="{{ total[o] }}">{{ count(total[o]) }}</span> {{ outcome_labels[o]|lower }}</li>{% endfor %}</ul></div>
  <div class="card"><h2>Deflection</h2>
    <div class="figure"><span id="deflection-rate" data-value="{{ total.deflection_rate if total.deflection_rate is not none else '' }}">{{ pct(total.deflection_rate) }}</span></div>
    <div class="note">self-served ÷ all calls that ended</div></div>
  <div class="card"><h2>Repeat-adjusted</h2>
    <div class="figure"><span id="repeat-adjusted-deflection-rate" data-value="{{ total.repeat_adjusted_deflection_rate if total.repeat_adjusted_deflection_rate is not none else '' }}">{{ pct(total.repeat_adjusted_deflection_rate) }}</span></div>
    <div class="note"><span id="repeat-calls" data-value="{{ total.repeat_calls }}">{{ count(total.repeat_calls) }}</span> self-served caller{{ "s" if total.repeat_calls != 1 }} called back within 24 h</div></div>
  <div class="card"><h2>Cost saved</h2>
    <div class="figure"><span id="cost-saved" data-value="{{ total.cost_saved }}" data-currency="{{ currency }}">{{ cost_saved }}</span></div>
    <div class="note"><span id="deflected" data-value="{{ total.deflected }}">{{ count(total.deflected) }}</span> deflected calls, less IVR minutes</div></div>
  <div class="card"><h2>Transfers</h2>
    <div class="figure"><span id="transfers-answered" data-value="{{ total.transfers_answered }}">{{ count(total.transfers_answered) }}</span> <small>answered</small></div>
    <div class="note" id="transfers-note"><span id="queue-abandoned" data-value="{{ total.queue_abandoned }}">{{ count(total.queue_abandoned) }}</span> hung up in the queue (<span id="queue-abandonment-rate" data-value="{{ total.queue_abandonment_rate if total.queue_abandonment_rate is not none else '' }}">{{ pct(total.queue_abandonment_rate) }}</span>{% if total.avg_queue_seconds_abandoned is not none %}, after {{ duration(total.avg_queue_seconds_abandoned) }} on average{% endif %}) · <span id="transfers-unanswered" data-value="{{ total.transfers_unanswered }}">{{ count(total.transfers_unanswered) }}</span> not answered</div></div>
  <div class="card"><h2>Avg time in IVR</h2>
    <div class="figure"><span id="avg-ivr-time" data-value="{{ total.avg_ivr_seconds if total.avg_ivr_seconds is not none else '' }}">{{ duration(total.avg_ivr_seconds) }}</span></div>
    <div class="note">until an agent answered, or the call ended</div></div>
</div>

<section id="timeline"><h2>Deflection by {{ "hour" if view.by_hour else "day" }}</h2>{{ charts.timeline }}</section>
<div class="row">
  <section id="outcomes"><h2>Outcomes by reason</h2>{{ charts.outcomes }}</section>
  <section id="causes"><h2>Transfer causes</h2>{{ charts.causes }}
  {% if total.failed %}<p class="note">Also <span id="failed-calls" data-value="{{ total.failed }}">{{ count(total.failed) }}</span> failed call{{ "s" if total.failed != 1 }}: an internal error put the caller through to a human.</p>{% endif %}</section>
</div>

<section id="providers"><h2>Calls by provider</h2>
{% if view.providers %}
<table>
  <thead><tr><th>Provider</th><th>Calls</th><th>Self-served</th><th>Transferred</th><th>Abandoned</th><th>Deflection</th></tr></thead>
  <tbody>
  {% for row in view.providers %}
    <tr data-provider="{{ row.provider or '' }}" data-calls="{{ row.calls }}">
      <td>{{ row.provider or "(unknown)" }}</td><td>{{ count(row.calls) }}</td>
      <td>{{ count(row.self_served) }}</td><td>{{ count(row.transferred) }}</td>
      <td>{{ count(row.abandoned) }}</td><td>{{ pct(row.deflection_rate) }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}<p class="note">No calls in this period.</p>{% endif %}
</section>

<section id="flow-graph"><h2>The flow: traffic and drop-off by node</h2>
{% if view.graph_svg %}<input type="checkbox" id="graph-zoom" class="graph-zoom"><label for="graph-zoom">Full size (scroll sideways)</label>
<p class="note">Each box: calls that reached the node and how many left there (hung up or went to a human); the darker, the more callers lost. Hover a box for details.</p>
<div class="graph">{{ view.graph_svg }}</div>
{% elif not view.version %}<p class="note">No calls in this period.</p>
{% else %}<p class="note">Version {{ view.version[:12] }} of {{ view.flow }} cannot be drawn: it no longer loads.</p>{% endif %}
</section>

<section id="worst-nodes"><h2>Where callers leave</h2>
{% if worst %}
<table>
  <thead><tr><th>Node</th><th>Kind</th><th>Reached</th><th>Hung up</th><th>To a human</th><th>Dropped</th><th>Drop-off</th></tr></thead>
  <tbody>
  {% for row in worst %}
    <tr data-node="{{ row.node }}" data-reached="{{ row.reached }}" data-dropped="{{ row.dropped }}" data-drop-off-rate="{{ row.drop_off_rate }}">
      <td><code>{{ row.node }}</code></td><td>{{ row.kind }}</td><td>{{ count(row.reached) }}</td>
      <td>{{ count(row.hung_up) }}</td><td>{{ count(row.transferred) }}</td>
      <td>{{ count(row.dropped) }}</td><td>{{ pct(row.drop_off_rate) }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}<p class="note">No caller left the flow early in this period.</p>{% endif %}
</section>
{% endif %}
</main>
</body>
</html>
""")
