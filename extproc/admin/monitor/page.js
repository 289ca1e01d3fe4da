// The monitor page: which identities have been active in a time range, the refusals of
// the range with identical ones together (what was done, the rules that refused it, the
// target: how many times, when first and last, by whom), and for the identity chosen its
// activity over the range (an SVG chart drawn here, no library: allowed, refused, held
// and masked values, each series with its own dash and marker shape, a tooltip on each
// point, and the same numbers as a table), its refusals grouped and its alerts, each
// linking to its records on the recordings page (for the record's readers). It reads the
// API with the approver's own token (kept for this tab only) and reads again every few
// seconds. Where the page is (identity, range) is in the URL's fragment.
// Everything shown comes from what agents did, so it is set as text, never as markup,
// and its control and invisible characters are shown as escapes (`visible`).
"use strict";

const EVERY_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const RANGES = ["15m", "1h", "6h", "24h"];
// Each series is told apart by its colour, its dash and its marker's shape, and named in
// the legend, the tooltip and the table: never by colour alone.
const SERIES = [
  { name: "allowed", label: "allowed", colour: "#1f6feb", dash: "", shape: "circle" },
  { name: "refusals", label: "refused", colour: "#d1242f", dash: "7 4", shape: "square" },
  { name: "holds", label: "held", colour: "#8250df", dash: "2 3", shape: "triangle" },
  { name: "masked", label: "masked values", colour: "#9a6700", dash: "10 3 2 3",
    shape: "diamond" },
];

const monitor = document.getElementById("monitor");
const identities = document.querySelector("#identities tbody");
const detail = document.getElementById("detail");
const plot = document.getElementById("plot");
const chart = document.getElementById("chart");
const tip = document.getElementById("tip");
const chartRows = document.querySelector("#chart-table tbody");
const groupRows = document.querySelector("#groups tbody");
const allGroupRows = document.querySelector("#all-groups tbody");
const alertRows = document.querySelector("#alerts tbody");
const customFields = document.getElementById("custom");
const sinceInput = document.getElementById("since");
const untilInput = document.getElementById("until");

function empty(rows, text, columns) {
  cell(rows.insertRow(), text, "empty").colSpan = columns;
}

// Each cell labelled with its column's heading, for the narrow layout's cards.
function label(rows) {
  const heads = Array.from(rows.closest("table").tHead.rows[0].cells, (th) => th.textContent);
  for (const row of rows.rows) {
    Array.from(row.cells).forEach((td, i) => {
      if (td.colSpan === 1 && heads[i]) td.dataset.label = heads[i];
    });
  }
}

// Times as every admin page, the CLI and the report show them: in UTC (AdminTime); in a
// table, relative with the UTC time on hover.
function when(us) {
  return AdminTime.utc(us);
}

function whenCell(row, us) {
  row.insertCell().append(AdminTime.element(us));
}

// A chart's hours and minutes, in UTC.
function clock(seconds) {
  return new Date(seconds * 1000).toISOString().slice(11, 16);
}

// -- where the page is: #identity=<sub>&range=1h (or &since=S&until=U) ----------------------

function place() {
  const found = new URLSearchParams(location.hash.slice(1));
  const since = found.get("since"), until = found.get("until");
  const custom = since !== null && until !== null;
  const range = found.get("range");
  return { identity: found.get("identity"), since: custom ? since : null,
           until: custom ? until : null,
           range: custom ? "custom" : (RANGES.includes(range) ? range : "1h") };
}

function placeHash(identity, where) {
  const found = new URLSearchParams();
  if (identity !== null) found.set("identity", identity);
  if (where.range === "custom") {
    found.set("since", where.since);
    found.set("until", where.until);
  } else if (where.range !== "1h") {
    found.set("range", where.range);
  }
  return "#" + found.toString();
}

function rangeQuery(where) {
  return where.range === "custom"
    ? "since=" + encodeURIComponent(where.since) + "&until=" + encodeURIComponent(where.until)
    : "range=" + where.range;
}

// A trace's records, on the recordings page.
function recordHref(trace) {
  return "/recordings/ui#" + new URLSearchParams({ record: trace }).toString();
}

// The sessions of an identity (and, given, on a target; with records in a window of Unix
// seconds), on the recordings page.
function sessionsHref(identity, target, window) {
  const found = { identity };
  if (target) found.target = target;
  if (window) Object.assign(found, { from: window.from, until: window.until });
  return "/recordings/ui#" + new URLSearchParams(found).toString();
}

let chosen = null;  // the identity shown in detail (the URL's, else the latest active)

// -- the time range --------------------------------------------------------------------------

// A datetime-local input's value for `seconds`, and back: in UTC, as the page says times.
function utcInput(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 16);
}

function fromUtcInput(value) {
  return Date.parse(value + "Z") / 1000;
}

let choosing = false;  // the viewer is giving a range of their own, not yet shown
let shownRange = null;  // the range of the latest answer

function showRange(where, range) {
  if (range) shownRange = range;
  if (!choosing) {
    for (const radio of document.querySelectorAll("#range input[name=range]")) {
      radio.checked = radio.value === where.range;
    }
    customFields.hidden = where.range !== "custom";
    if (range) {
      sinceInput.value = utcInput(range.since);
      untilInput.value = utcInput(range.until);
    }
  }
  if (range) {
    const per = range.step === 60 ? "per minute" : "per " + range.step / 60 + " minutes";
    document.getElementById("per").textContent = per;
    document.getElementById("range-said").textContent = "From " + when(range.since * 1e6)
      + " to " + when(range.until * 1e6) + " (" + range.minutes + " minutes), " + per + ".";
  }
}

document.getElementById("range").addEventListener("change", (event) => {
  if (event.target.name !== "range") return;
  choosing = event.target.value === "custom";
  if (choosing) {
    customFields.hidden = false;
    if (shownRange) {
      sinceInput.value = utcInput(shownRange.since);
      untilInput.value = utcInput(shownRange.until);
    }
    return;
  }
  location.hash = placeHash(place().identity, { range: event.target.value });
});

document.getElementById("apply").addEventListener("click", () => {
  const since = fromUtcInput(sinceInput.value);
  const until = fromUtcInput(untilInput.value);
  if (!Number.isFinite(since) || !Number.isFinite(until) || since >= until) {
    say("Give the range's start and end, the start first.", true);
    return;
  }
  choosing = false;
  location.hash = placeHash(place().identity, { range: "custom", since: String(since),
                                                until: String(until) });
});

// -- the overview --------------------------------------------------------------------------

function showIdentities(answer, where) {
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
    row.insertCell().append(link(name, placeHash(each.identity, where), "identity"), " ",
                            link("sessions", sessionsHref(each.identity), "sessions"));
    for (const metric of ["allowed", "refusals", "holds", "masked"]) {
      cell(row, each.totals[metric], "num");
    }
  }
  if (answer.identities.length === 0) {
    empty(identities, "Nobody has been active in this range.", 5);
  }
}

// Refusals, identical ones together: how many, what, why, where, (by whom,) when.
function showGroups(rows, found, withIdentities, more) {
  rows.replaceChildren();
  for (const group of found.groups) {
    const row = rows.insertRow();
    row.dataset.what = group.what;
    row.dataset.traces = group.trace_ids.join(" ");
    cell(row, group.count, "num");
    cell(row, group.what, "text");
    const why = group.reasons.length ? group.reasons.join("; ") + " (" + group.rules.join(", ")
      + ")" : group.rules.join(", ");
    cell(row, "", "why").append(...traceLinked(why));  // a flow hold's answers before it
    cell(row, group.target);
    if (withIdentities) {
      const others = group.identities_count - group.identities.length;
      cell(row, group.identities.join(", ") + (others > 0 ? " and " + others + " more" : ""),
           "who");
    }
    whenCell(row, group.first_us);
    whenCell(row, group.last_us);
    const records = row.insertCell();
    const [latest, ...older] = group.trace_ids;
    records.append(link("latest", recordHref(latest), "record"));
    for (const trace of older) records.append(" ", link(trace.slice(0, 8), recordHref(trace),
                                                        "related"));
    if (group.identities_count === 1) {  // whose sessions there: one identity's
      records.append(" ", link("sessions", sessionsHref(group.identities[0], group.target),
                               "sessions"));
    }
  }
  if (found.groups.length === 0) {
    empty(rows, "No refusal in this range.", withIdentities ? 8 : 7);
  }
  label(rows);
  const notes = [];
  if (found.count > found.groups.length) {
    notes.push("The " + found.groups.length + " most frequent of " + found.count
               + " kinds of refusal are listed.");
  }
  if (found.truncated) {
    notes.push("Only the newest " + found.grouped + " refusals of the range are grouped.");
  }
  more.textContent = notes.join(" ");
  more.hidden = notes.length === 0;
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

// A marker's outline, centred on (x, y).
function marker(shape, x, y) {
  const r = 3.5;
  const at = (dx, dy) => (x + dx).toFixed(1) + " " + (y + dy).toFixed(1);
  switch (shape) {
    case "circle":
      return "M " + at(-r, 0) + " a " + r + " " + r + " 0 1 0 " + 2 * r + " 0 a " + r + " "
        + r + " 0 1 0 " + -2 * r + " 0 Z";
    case "square":
      return "M " + at(-r, -r) + " L " + at(r, -r) + " L " + at(r, r) + " L " + at(-r, r) + " Z";
    case "triangle":
      return "M " + at(0, -1.3 * r) + " L " + at(1.2 * r, r) + " L " + at(-1.2 * r, r) + " Z";
    default:  // diamond
      return "M " + at(0, -1.4 * r) + " L " + at(1.4 * r, 0) + " L " + at(0, 1.4 * r) + " L "
        + at(-1.4 * r, 0) + " Z";
  }
}

// The legend: each series' dash and marker, drawn as on the chart, and its name.
function drawLegend() {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const series of SERIES) {
    const item = document.createElement("li");
    item.dataset.series = series.name;
    const key = svg("svg", { width: 34, height: 12, viewBox: "0 0 34 12",
                             "aria-hidden": "true" }, item);
    svg("line", { x1: 1, x2: 33, y1: 6, y2: 6, stroke: series.colour, "stroke-width": 2,
                  "stroke-dasharray": series.dash }, key);
    svg("path", { d: marker(series.shape, 17, 6), fill: series.colour,
                  "data-shape": series.shape }, key);
    item.append(series.label);
    legend.append(item);
  }
}

let drawn = null;  // { buckets, range, x, slot, left, plotW }: the chart as drawn
let pointed = null;  // the bucket the tooltip tells, by index

function bucketText(bucket, range) {
  return clock(bucket.start) + "–" + clock(bucket.start + range.step) + ": "
    + bucket.allowed + " allowed, " + bucket.refusals + " refused, " + bucket.holds
    + " held, " + bucket.masked + " masked values";
}

function drawChart(buckets, range) {
  const width = Math.max(300, Math.round(plot.clientWidth || 720));
  const height = width < 500 ? 200 : 240;
  const left = 40, right = 12, top = 12, bottom = 28;
  const plotW = width - left - right, plotH = height - top - bottom;
  const largest = Math.max(0, ...buckets.flatMap((b) => SERIES.map((s) => b[s.name])));
  const topValue = ceiling(largest);
  const x = (i) => left + (buckets.length > 1 ? i * plotW / (buckets.length - 1) : plotW / 2);
  const y = (value) => top + plotH - value * plotH / topValue;
  chart.replaceChildren();
  chart.setAttribute("viewBox", "0 0 " + width + " " + height);
  chart.dataset.max = String(topValue);
  chart.dataset.buckets = String(buckets.length);
  chart.dataset.step = String(range.step);
  const grid = svg("g", { class: "grid" }, chart);
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    const value = topValue * share;
    svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value),
                  stroke: share === 0 ? "#888" : "#e5e5e5", "stroke-width": 1 }, grid);
    const text = svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, grid);
    text.textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
  const labels = width < 500 ? 3 : 5;
  for (let n = 0; n < labels; n++) {
    const i = Math.round(n * (buckets.length - 1) / (labels - 1));
    const text = svg("text", { x: x(i), y: height - 8, "text-anchor": n === 0 ? "start"
                                 : n === labels - 1 ? "end" : "middle" }, grid);
    text.textContent = clock(buckets[i].start);
  }
  // One hover target per bucket, under the lines, telling its counts.
  const slots = svg("g", { class: "slots" }, chart);
  const slot = plotW / Math.max(1, buckets.length - 1);
  buckets.forEach((bucket, i) => {
    const area = svg("rect", { x: x(i) - slot / 2, y: top, width: slot, height: plotH,
                               fill: "transparent", class: "slot", "data-index": i }, slots);
    svg("title", {}, area).textContent = bucketText(bucket, range);
  });
  svg("rect", { class: "brush", x: 0, y: top, width: 0, height: plotH, fill: "#0b57d0",
                "fill-opacity": 0.15, stroke: "#0b57d0", visibility: "hidden",
                "pointer-events": "none" }, chart);
  svg("line", { class: "guide", x1: 0, x2: 0, y1: top, y2: top + plotH, stroke: "#555",
                "stroke-width": 1, visibility: "hidden", "pointer-events": "none" }, chart);
  for (const series of SERIES) {
    const values = buckets.map((b) => b[series.name]);
    const line = svg("polyline", {
      points: values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" "),
      fill: "none", stroke: series.colour, "stroke-width": 2, "stroke-dasharray": series.dash,
      "stroke-linejoin": "round", "data-series": series.name, "pointer-events": "none",
    }, chart);
    line.dataset.values = values.join(",");
    svg("title", {}, line).textContent = series.label;
    // A marker on each point with a count, its tooltip saying which and how many.
    const marks = svg("g", { class: "markers", "data-series": series.name }, chart);
    values.forEach((value, i) => {
      if (!value) return;
      const mark = svg("path", { d: marker(series.shape, x(i), y(value)), fill: series.colour,
                                 stroke: "#fff", "stroke-width": 1, "data-shape": series.shape,
                                 "data-index": i }, marks);
      svg("title", {}, mark).textContent = clock(buckets[i].start) + ": " + value + " "
        + series.label;
    });
  }
  drawn = { buckets, range, x, slot, left, plotW };
  if (pointed !== null) pointAt(Math.min(pointed, buckets.length - 1), !tip.hidden);
  drawBrush();
}

// The tooltip and the guide on one bucket (`show`: make the tooltip seen).
function pointAt(index, show = true) {
  if (drawn === null) return;
  pointed = Math.max(0, Math.min(index, drawn.buckets.length - 1));
  const at = drawn.x(pointed);
  const guide = chart.querySelector("line.guide");
  guide.setAttribute("x1", at);
  guide.setAttribute("x2", at);
  guide.setAttribute("visibility", show ? "visible" : "hidden");
  tip.textContent = bucketText(drawn.buckets[pointed], drawn.range);
  tip.dataset.index = String(pointed);
  tip.hidden = !show;
  if (show) {
    const scale = chart.getBoundingClientRect().width / chart.viewBox.baseVal.width;
    const room = plot.clientWidth - tip.offsetWidth;
    tip.style.left = Math.max(0, Math.min(room, at * scale - tip.offsetWidth / 2)) + "px";
  }
}

function unpoint() {
  if (document.activeElement === chart) return;
  tip.hidden = true;
  const guide = chart.querySelector("line.guide");
  if (guide) guide.setAttribute("visibility", "hidden");
}

chart.addEventListener("mouseover", (event) => {
  const found = event.target.closest("[data-index]");
  if (found) pointAt(Number(found.dataset.index));
});
chart.addEventListener("mouseleave", unpoint);
chart.addEventListener("focus", () => {
  if (drawn) pointAt(pointed === null ? drawn.buckets.length - 1 : pointed);
});
chart.addEventListener("blur", unpoint);
chart.addEventListener("keydown", (event) => {
  if (drawn === null) return;
  const last = drawn.buckets.length - 1;
  if (event.key === "Enter") {  // the chosen minutes' sessions, or the pointed minute's
    const at = pointed ?? last;
    if (brushWindow() === null) choose(drawn.buckets[at].start, drawn.buckets[at].start);
    if (brushWindow() !== null && chosen !== null) {
      event.preventDefault();
      location.href = document.getElementById("brushed-link").href;
    }
    return;
  }
  if (event.key === "Escape" && brush !== null) {
    event.preventDefault();
    brush = null;
    drawBrush();
    return;
  }
  const moves = { ArrowLeft: (pointed ?? last) - 1, ArrowRight: (pointed ?? last) + 1,
                  Home: 0, End: last };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const from = pointed ?? last;
  pointAt(moves[event.key]);
  if (event.shiftKey) {  // the selection grows from where it began (or from here)
    const anchor = brushWindow() !== null ? brush.anchor : drawn.buckets[from].start;
    choose(anchor, drawn.buckets[pointed].start);
  }
});
// -- brushing: minutes chosen on the chart, and their sessions ------------------------------

// The buckets chosen, by their start (Unix seconds: a reading later, the range has moved
// on, and the same minutes are at other places); null: none.
let brush = null;  // { anchor, end }
let dragging = false;

function bucketIndex(start) {
  return drawn ? drawn.buckets.findIndex((b) => b.start === start) : -1;
}

// The window chosen (Unix seconds), once its buckets are among those drawn.
function brushWindow() {
  if (brush === null || drawn === null) return null;
  const ends = [bucketIndex(brush.anchor), bucketIndex(brush.end)];
  if (ends.includes(-1)) return null;
  const first = Math.min(...ends), last = Math.max(...ends);
  return { first, last, from: drawn.buckets[first].start,
           until: drawn.buckets[last].start + drawn.range.step };
}

function drawBrush() {
  const rect = chart.querySelector("rect.brush");
  const shown = document.getElementById("brushed");
  const window = brushWindow();
  if (rect) rect.setAttribute("visibility", window ? "visible" : "hidden");
  shown.hidden = window === null || chosen === null;
  if (shown.hidden) return;
  const lo = Math.max(drawn.left, drawn.x(window.first) - drawn.slot / 2);
  const hi = Math.min(drawn.left + drawn.plotW, drawn.x(window.last) + drawn.slot / 2);
  rect.setAttribute("x", lo);
  rect.setAttribute("width", Math.max(2, hi - lo));
  const minutes = Math.round((window.until - window.from) / 60);
  const anchor = document.getElementById("brushed-link");
  anchor.href = sessionsHref(chosen, null, window);
  anchor.textContent = "Sessions of " + visible(chosen) + " from " + clock(window.from)
    + " to " + clock(window.until) + " UTC (" + minutes + " min) →";
}

function choose(anchor, end) {
  brush = { anchor, end };
  drawBrush();
}

// The bucket under a pointer's x (in the page), the nearest.
function indexAt(clientX) {
  const box = chart.getBoundingClientRect();
  const x = (clientX - box.left) * chart.viewBox.baseVal.width / box.width;
  const step = drawn.buckets.length > 1 ? drawn.plotW / (drawn.buckets.length - 1) : 1;
  return Math.max(0, Math.min(drawn.buckets.length - 1, Math.round((x - drawn.left) / step)));
}

chart.addEventListener("pointerdown", (event) => {
  if (drawn === null || event.button !== 0) return;
  const start = drawn.buckets[indexAt(event.clientX)].start;
  dragging = true;
  chart.setPointerCapture(event.pointerId);
  choose(start, start);
});
chart.addEventListener("pointermove", (event) => {
  if (!dragging || drawn === null || brush === null) return;
  const at = indexAt(event.clientX);
  pointAt(at);
  if (drawn.buckets[at].start !== brush.end) choose(brush.anchor, drawn.buckets[at].start);
});
chart.addEventListener("pointerup", () => { dragging = false; });
chart.addEventListener("pointercancel", () => { dragging = false; });
document.getElementById("brush-clear").addEventListener("click", () => {
  brush = null;
  drawBrush();
  chart.focus();
});

// Drawn again at the width it has, so that its text stays legible on a phone.
new ResizeObserver(() => {
  if (drawn && Math.abs(plot.clientWidth - chart.viewBox.baseVal.width) > 8) {
    drawChart(drawn.buckets, drawn.range);
  }
}).observe(plot);

function showChartTable(buckets) {
  chartRows.replaceChildren();
  for (const bucket of buckets) {
    const row = chartRows.insertRow();
    cell(row, when(bucket.start * 1e6));
    for (const series of SERIES) cell(row, bucket[series.name], "num");
  }
}

function showAlerts(alerts) {
  alertRows.replaceChildren();
  for (const alert of alerts) {
    const row = alertRows.insertRow();
    row.dataset.trace = alert.trace_id;
    whenCell(row, alert.started_us);
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
  if (alerts.length === 0) empty(alertRows, "No alert in this range.", 6);
  label(alertRows);
}

function showIdentity(answer) {
  detail.hidden = false;
  document.getElementById("who").textContent = visible(answer.identity);
  drawChart(answer.buckets, answer.range);
  showChartTable(answer.buckets);
  const sum = answer.totals, day = answer.day;
  document.getElementById("totals").textContent =
    "In this range: " + sum.allowed + " allowed, " + sum.refusals + " refused, " + sum.holds
    + " held, " + sum.masked + " masked values, " + sum.administrative + " administrative. "
    + "Last day: " + day.exchanges + " exchanges, " + day.refusals + " refused, " + day.holds
    + " held, " + day.masked + " masked values, " + day.administrative + " administrative.";
  showGroups(groupRows, answer.refusal_groups, false, document.getElementById("groups-more"));
  showAlerts(answer.alerts);
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
  if (!hasCaller()) return;
  const mine = ++reading;
  const where = place();
  showRange(where, null);
  try {
    const overview = await call("/monitor/activity?" + rangeQuery(where));
    if (mine !== reading) return;
    chosen = where.identity !== null ? where.identity
      : (overview.identities.length ? overview.identities[0].identity : null);
    monitor.hidden = false;
    showRange(where, overview.range);
    // Drawn again only when changed, so a reader's selection or hover outlives a reading.
    if (changed("overview", [chosen, where, overview.identities])) {
      showIdentities(overview, where);
    }
    if (changed("groups", overview.refusal_groups)) {
      showGroups(allGroupRows, overview.refusal_groups, true,
                 document.getElementById("all-groups-more"));
    }
    if (chosen !== null) {
      const one = await call("/monitor/activity?identity=" + encodeURIComponent(chosen)
                             + "&" + rangeQuery(where));
      if (mine !== reading) return;
      const { now, ...shown } = one;
      if (changed("identity", shown)) showIdentity(one);
    } else {
      detail.hidden = true;
      changed("identity", null);
    }
    say(overview.identities.length + " active in this range. Updated "
        + AdminTime.utc(Date.now() * 1000).slice(11) + ".", false);
  } catch (error) {
    if (mine !== reading) return;
    say(String(error.message), true);
  }
}

drawLegend();
signIn(refresh, () => {
  monitor.hidden = true;
  identities.replaceChildren();
  alertRows.replaceChildren();
  groupRows.replaceChildren();
  allGroupRows.replaceChildren();
  for (const what of Object.keys(lastShown)) delete lastShown[what];
});
window.addEventListener("hashchange", refresh);
setInterval(refresh, EVERY_MS);
if (hasCaller()) refresh();
