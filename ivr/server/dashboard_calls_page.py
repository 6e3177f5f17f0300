"""The dashboard's call search and call pages as HTML: one Jinja2 template
(autoescaped: every value from the log is escaped) with inline CSS that
lays out at 390 px wide with no sideways scrolling, and the page's words."""

from __future__ import annotations

from jinja2 import Environment

from ivr.i18n import N_, Formats

__all__ = ["PAGE", "WORDS", "words"]


def words(fmt: Formats) -> dict[str, str]:
    """The page's words in ``fmt``'s language, by key."""
    return {key: fmt.gettext(message) for key, message in WORDS.items()}


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

#: The page's words, translated per request (the template has no literal text).
WORDS = {
    "dashboard": N_("Dashboard"),
    "find_a_call": N_("Find a call"),
    "from": N_("From"),
    "to": N_("To"),
    "flow": N_("Flow"),
    "outcome": N_("Outcome"),
    "any": N_("any"),
    "reason": N_("Reason"),
    "transfer_cause": N_("Transfer cause"),
    "left_the_flow_at": N_("Left the flow at"),
    "caller_s_number": N_("Caller's number"),
    "failed_calls_only": N_("Failed calls only"),
    "search": N_("Search"),
    "calls_of_the_number": N_("Calls of the number you gave, found by its keyed hash."),
    "calls_found": N_("Calls found"),
    "only_the_most_recent": N_("Only the most recent calls are listed; narrow the search to see others."),
    "started": N_("Started"),
    "call": N_("Call"),
    "ongoing": N_("ongoing"),
    "no_call_matches_this": N_("No call matches this search."),
    "timeline": N_("Timeline"),
}

PAGE = _ENV.from_string("""\
<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  * { box-sizing:border-box; }
  body { margin:0; background:#f5f7fa; color:#1f2933;
         font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif; }
  header, main { max-width:1100px; margin:0 auto; padding:12px 16px; }
  header { display:flex; flex-wrap:wrap; gap:8px 20px; align-items:baseline; }
  h1 { font-size:20px; margin:0; overflow-wrap:anywhere; min-width:0; }
  a { color:#0072B2; }
  section { background:#fff; border:1px solid #e4e7eb; border-radius:10px; padding:12px 16px;
            margin-bottom:16px; min-width:0; }
  h2 { font-size:15px; margin:0 0 8px; }
  form { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:10px; }
  label { display:flex; flex-direction:column; font-size:12px; color:#616e7c; gap:3px; min-width:0; }
  label.check { flex-direction:row; align-items:center; gap:6px; }
  input, select, button { font:inherit; padding:5px 8px; border:1px solid #cbd2d9;
                          border-radius:6px; background:#fff; color:#1f2933; min-width:0; width:100%; }
  input[type=checkbox] { width:auto; }
  button { background:#0072B2; border-color:#0072B2; color:#fff; cursor:pointer; align-self:end; }
  .error { background:#fdecea; border:1px solid #D55E00; border-radius:6px; padding:8px 12px; }
  .note { color:#616e7c; font-size:12px; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid #e4e7eb; vertical-align:top; }
  th { font-size:12px; color:#616e7c; }
  td, dd, .facts dd { overflow-wrap:anywhere; }
  code { font-size:13px; }
  dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 12px; margin:0; }
  dl.facts dt { color:#616e7c; }
  dl.facts dd { margin:0; }
  ol.steps { list-style:none; margin:0; padding:0; }
  ol.steps li { border-top:1px solid #e4e7eb; padding:8px 0; }
  .when { font-variant-numeric:tabular-nums; color:#616e7c; margin-right:8px; }
  ol.steps dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 10px; margin:4px 0 0 0; }
  ol.steps dt { color:#616e7c; font-size:12px; }
  ol.steps dd { margin:0; }
  @media (max-width: 640px) {
    table, thead, tbody, tr, th, td { display:block; }
    thead { display:none; }
    tr { border-bottom:1px solid #cbd2d9; padding:6px 0; }
    td { border:0; padding:2px 0; }
    td[data-label]::before { content:attr(data-label) ": "; color:#616e7c; font-size:12px; }
    dl.facts, ol.steps dl { grid-template-columns:1fr; }
    dl.facts dd { margin-bottom:4px; }
  }
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <a href="{{ base }}">{{ w.dashboard }}</a>
  {% if call or error and not searched %}<a href="{{ base }}/calls">{{ w.find_a_call }}</a>{% endif %}
</header>
<main>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% if searched %}
<section id="search">
  <form method="post" action="{{ base }}/calls">
    <label>{{ w.from }}<input type="date" name="since" value="{{ query.since.isoformat() if query.since else '' }}"></label>
    <label>{{ w.to }}<input type="date" name="until" value="{{ query.until.isoformat() if query.until else '' }}"></label>
    <label>{{ w.flow }}<input name="flow" value="{{ query.flow or '' }}"></label>
    <label>{{ w.outcome }}<select name="outcome"><option value="">{{ w.any }}</option>
      {% for value, name in outcomes.items() %}<option value="{{ value }}"{% if value == query.outcome %} selected{% endif %}>{{ t(name) }}</option>{% endfor %}
    </select></label>
    <label>{{ w.reason }}<input name="reason" value="{{ query.reason or '' }}"></label>
    <label>{{ w.transfer_cause }}<input name="transfer_cause" value="{{ query.transfer_cause or '' }}"></label>
    <label>{{ w.left_the_flow_at }}<input name="exit_node" value="{{ query.exit_node or '' }}"></label>
    <label>{{ w.caller_s_number }}<input name="caller" type="tel" autocomplete="off" value=""></label>
    <label class="check"><input type="checkbox" name="failed" value="1"{% if query.failed %} checked{% endif %}>{{ w.failed_calls_only }}</label>
    <input type="hidden" name="lang" value="{{ lang }}">
    <button type="submit">{{ w.search }}</button>
  </form>
  {% if query.caller %}<p class="note" id="by-caller">{{ w.calls_of_the_number }}</p>{% endif %}
</section>
<section id="results">
  <h2>{{ w.calls_found }}: <span id="found" data-value="{{ rows|length }}">{{ rows|length }}</span></h2>
  {% if rows|length >= limit %}<p class="note">{{ w.only_the_most_recent }}</p>{% endif %}
  {% if rows %}
  <table>
    <thead><tr><th>{{ w.started }}</th><th>{{ w.call }}</th><th>{{ w.flow }}</th><th>{{ w.reason }}</th><th>{{ w.outcome }}</th><th>{{ w.transfer_cause }}</th><th>{{ w.left_the_flow_at }}</th></tr></thead>
    <tbody>
    {% for row in rows %}
      <tr data-call="{{ row.call_id }}">
        <td data-label="{{ w.started }}">{{ row.started_at[:16].replace("T", " ") }}</td>
        <td data-label="{{ w.call }}"><a href="{{ base }}/calls/{{ quote(row.call_id, safe='') }}?lang={{ lang }}"><code>{{ row.call_id }}</code></a></td>
        <td data-label="{{ w.flow }}">{{ row.flow }}</td>
        <td data-label="{{ w.reason }}">{{ row.reason or '–' }}</td>
        <td data-label="{{ w.outcome }}">{{ t(outcomes[row.outcome]) if row.outcome in outcomes else w.ongoing }}</td>
        <td data-label="{{ w.transfer_cause }}">{{ row.cause or '–' }}</td>
        <td data-label="{{ w.left_the_flow_at }}">{{ row.exit_node or '–' }}</td>
      </tr>
    {% endfor %}
    </tbody>
  </table>
  {% else %}<p class="note">{{ w.no_call_matches_this }}</p>{% endif %}
</section>
{% endif %}
{% if call %}
<section id="facts">
  <dl class="facts">
  {% for label, text in call.facts %}<dt>{{ label }}</dt><dd>{{ text }}</dd>{% endfor %}
  </dl>
</section>
<section id="timeline"><h2>{{ w.timeline }}</h2>
  <ol class="steps">
  {% for step in call.steps %}
    <li data-node="{{ step.node }}"><span class="when">{{ step.offset }}</span><code>{{ step.node }}</code> <span class="note">({{ step.kind }})</span>
      {% if step.lines %}<dl>{% for label, text in step.lines %}<dt>{{ label }}</dt><dd>{{ text }}</dd>{% endfor %}</dl>{% endif %}
    </li>
  {% endfor %}
  </ol>
</section>
{% endif %}
</main>
</body>
</html>
""")
