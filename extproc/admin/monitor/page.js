// The monitor page: which identities have been active, and for the one chosen its
// activity per minute over the last hour (an SVG chart drawn here, no library), its
// latest alerts and refusals, each linking to its records on the recordings page (for
// the record's readers). It reads the API with the approver's own token (kept for this
// tab only) and reads again every few seconds.
// Everything shown comes from what agents did, so it is set as text, never as markup,
// and its control and invisible characters are shown as escapes (`visible`).
"use strict";

const EVERY_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const SERIES = [
  { name: "exchanges", colour: "#1f6feb", label: "exchanges" },
  { name: "refusals", colour: "#d1242f", label: "refused" },
  { name: "masked", colour: "#bf8700", label: "masked values" },
];

const monitor = document.getElementById("monitor");
const identities = document.querySelector("#identities tbody");
const detail = document.getElementById("detail");
const chart = document.getElementById("chart");
const alertRows = document.querySelector("#alerts tbody");
const refusalRows = document.querySelector("#refusals tbody");

function link(text, hash, className) {
  const a = document.createElement("a");
  a.href = hash;
  a.textContent = visible(text);
  if (className) a.className = className;
  return a;
}

function empty(rows, text, columns) {
  cell(rows.insertRow(), text, "empty").colSpan = columns;
}

function when(us) {
  return new Date(us / 1000).toLocaleString();
}

// -- where the page is: #identity=<sub> -----------------------------------------------------

function place() {
  return { identity: new URLSearchParams(location.hash.slice(1)).get("identity") };
}

function placeHash(identity) {
  const found = new URLSearchParams();
  if (identity !== null) found.set("identity", identity);
  return "#" + found.toString();
}

// A trace's records, on the recordings page.
function recordHref(trace) {
  return "/recordings/ui#" + new URLSearchParams({ record: trace }).toString();
}

let chosen = null;  // the identity shown in detail (the URL's, else the latest active)

// -- the overview --------------------------------------------------------------------------

function showIdentities(answer) {
  identities.replaceChildren();
  for (const each of answer.identities) {
    const row = identities.insertRow();
    row.dataset.identity = each.identity;
    if (each.identity === chosen) {
      row.className = "selected";
      row.setAttribute("aria-current", "true");
    }
    const name = each.aggregated ? each.identity + " (beyond the bound, together)"
      : each.identity;
    row.insertCell().append(link(name, placeHash(each.identity)));
    cell(row, each.hour.exchanges + " / " + each.day.exchanges, "num");
    cell(row, each.day.refusals, "num");
    cell(row, each.day.masked, "num");
  }
  if (answer.identities.length === 0) {
    empty(identities, "Nobody has been active in the last day.", 4);
  }
}

// -- one identity ----------------------------------------------------------------------------

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.append(element);
  return element;
}

// A top for the y axis: 1, 2 or 5 times a power of ten, at least the largest count.
function ceiling(largest) {
  if (largest <= 4) return 4;
  const power = Math.pow(10, Math.floor(Math.log10(largest)));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= largest);
}

function drawChart(minutes) {
  const width = 720, height = 240;
  const left = 44, right = 12, top = 12, bottom = 28;
  const plotW = width - left - right, plotH = height - top - bottom;
  const largest = Math.max(0, ...minutes.flatMap((m) => SERIES.map((s) => m[s.name])));
  const topValue = ceiling(largest);
  const x = (i) => left + (minutes.length > 1 ? i * plotW / (minutes.length - 1) : 0);
  const y = (value) => top + plotH - value * plotH / topValue;
  chart.replaceChildren();
  chart.dataset.max = String(topValue);
  const grid = svg("g", { class: "grid" }, chart);
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    const value = topValue * share;
    svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value),
                  stroke: share === 0 ? "#888" : "#e5e5e5", "stroke-width": 1 }, grid);
    const label = svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, grid);
    label.textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
  const last = minutes.length - 1;
  for (const back of [60, 45, 30, 15, 0]) {
    const label = svg("text", { x: x(Math.max(0, last - back)), y: height - 8,
                                "text-anchor": back === 0 ? "end" : back === 60 ? "start"
                                  : "middle" }, grid);
    label.textContent = back === 0 ? "now" : "-" + back + " min";
  }
  for (const series of SERIES) {
    const values = minutes.map((m) => m[series.name]);
    const line = svg("polyline", {
      points: values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" "),
      fill: "none", stroke: series.colour, "stroke-width": 2,
      "stroke-linejoin": "round", "data-series": series.name,
    }, chart);
    line.dataset.values = values.join(",");
    svg("title", {}, line).textContent = series.label;
  }
  // One hover target per minute, telling its counts.
  const hover = svg("g", { class: "minutes" }, chart);
  const slot = plotW / Math.max(1, minutes.length - 1);
  minutes.forEach((m, i) => {
    const area = svg("rect", { x: x(i) - slot / 2, y: top, width: slot, height: plotH,
                               fill: "transparent" }, hover);
    const at = new Date(m.start * 1000).toLocaleTimeString([], { hour: "2-digit",
                                                                 minute: "2-digit" });
    svg("title", {}, area).textContent = at + ": " + m.exchanges + " exchanges, "
      + m.refusals + " refused, " + m.masked + " masked values, " + m.holds + " held";
  });
}

function showAlerts(alerts) {
  alertRows.replaceChildren();
  for (const alert of alerts) {
    const row = alertRows.insertRow();
    row.dataset.trace = alert.trace_id;
    cell(row, when(alert.started_us));
    cell(row, alert.severity, "severity-" + alert.severity);
    cell(row, alert.rule, "text");
    const what = cell(row, alert.message, "text");
    if (alert.delivery) what.append(" (webhook: " + visible(alert.delivery.error || "failed") + ")");
    cell(row, alert.target);
    const records = row.insertCell();
    records.append(link("record", recordHref(alert.trace_id), "record"));
    // The exchanges it points to, besides the one that raised it (on its own trace).
    for (const trace of alert.trace_ids.filter((t) => t !== alert.trace_id).slice(0, 5)) {
      records.append(" ", link(trace.slice(0, 8), recordHref(trace), "related"));
    }
  }
  if (alerts.length === 0) empty(alertRows, "No alert in the last day.", 6);
}

function showRefusals(refusals) {
  refusalRows.replaceChildren();
  for (const refusal of refusals) {
    const row = refusalRows.insertRow();
    row.dataset.trace = refusal.trace_id;
    cell(row, when(refusal.started_us));
    cell(row, refusal.target);
    cell(row, (refusal.method || "") + " " + (refusal.path || ""), "text");
    cell(row, refusal.status);
    const why = refusal.reasons.length ? refusal.reasons.join("; ")
      : refusal.rules.join(", ") || refusal.refusal || "";
    cell(row, why, "text");
    row.insertCell().append(link("record", recordHref(refusal.trace_id), "record"));
  }
  if (refusals.length === 0) empty(refusalRows, "No refusal in the last day.", 6);
}

function showIdentity(answer) {
  detail.hidden = false;
  document.getElementById("who").textContent = visible(answer.identity);
  drawChart(answer.minutes);
  const hour = answer.hour, day = answer.day;
  document.getElementById("totals").textContent =
    "Last hour: " + hour.exchanges + " exchanges, " + hour.refusals + " refused, "
    + hour.masked + " masked values, " + hour.holds + " held. Last day: " + day.exchanges
    + " exchanges, " + day.refusals + " refused, " + day.masked + " masked values, "
    + day.holds + " held, " + day.administrative + " administrative.";
  showAlerts(answer.alerts);
  showRefusals(answer.refusals);
}

// -- reading, again and again ----------------------------------------------------------------

let reading = 0;  // the latest reading asked for: an older answer arriving late is stale
const lastShown = {};

function changed(what, answer) {
  const text = JSON.stringify(answer);
  if (lastShown[what] === text) return false;
  lastShown[what] = text;
  return true;
}

async function refresh() {
  if (!sessionStorage.getItem(KEY)) return;
  const mine = ++reading;
  try {
    const overview = await call("/monitor/activity");
    if (mine !== reading) return;
    const wanted = place().identity;
    chosen = wanted !== null ? wanted
      : (overview.identities.length ? overview.identities[0].identity : null);
    monitor.hidden = false;
    // Drawn again only when changed, so a reader's selection or hover outlives a reading.
    if (changed("overview", [chosen, overview.identities])) showIdentities(overview);
    if (chosen !== null) {
      const one = await call("/monitor/activity?identity=" + encodeURIComponent(chosen));
      if (mine !== reading) return;
      const { now, since_us: since, ...shown } = one;
      if (changed("identity", shown)) showIdentity(one);
    } else {
      detail.hidden = true;
      changed("identity", null);
    }
    say(overview.identities.length + " active in the last day. Updated "
        + new Date().toLocaleTimeString() + ".", false);
  } catch (error) {
    if (mine !== reading) return;
    say(String(error.message), true);
  }
}

signIn(refresh, () => {
  monitor.hidden = true;
  identities.replaceChildren();
  alertRows.replaceChildren();
  refusalRows.replaceChildren();
  for (const what of Object.keys(lastShown)) delete lastShown[what];
});
window.addEventListener("hashchange", refresh);
setInterval(refresh, EVERY_MS);
if (sessionStorage.getItem(KEY)) refresh();
