// The recordings page: sessions listed (kind, whose, when, how long, how their exchanges
// ended; sorted by any column, a page at a time), one agent run as a timeline (what each
// exchange does, the prompt, the model's answer and tool calls, the requests they led to,
// the decisions with their rules and reasons, the approvals, the masked responses), an
// SSH shell's or a `kubectl exec`'s terminal recording played (asciinema-player, served by
// tollgate: a marker on its timeline per decided line, which leads to that decision), and
// any record as stored with its place in the chain. It reads the API with the reader's own
// token (kept for this tab only); each read is itself recorded. Everything shown comes
// from what agents did, so it is set as text, never as markup (`visible`); the player
// draws a recording's output as text too.
"use strict";

const recordings = document.getElementById("recordings");
const sessionRows = document.querySelector("#session-list tbody");
const timeline = document.getElementById("timeline");
const plumbingToggle = document.getElementById("plumbing");
const terminals = document.getElementById("terminals");
const TEXT_MOST = 4000;  // characters of one message shown; the record has them all
const KIND_NAMES = { http: "HTTP", llm: "LLM", mcp: "MCP", sql: "SQL", ssh: "SSH",
                     kubernetes: "Kubernetes" };
// A new sort starts from the order that shows the most telling first.
const FIRST_ORDER = { identity: "asc", kind: "asc" };
const PER_PAGE = "25";
// MCP's protocol plumbing (with notifications/*, and the transport's event streams and
// session ends): collapsed in a session's timeline until asked for.
const PLUMBING = new Set(["initialize", "ping", "tools/list", "resources/list",
                          "resources/templates/list", "prompts/list"]);
const PLUMBING_NAMES = ["initialize", "notifications", "listings", "ping", "event streams",
                        "the session's end"];
// Idle gaps in a terminal recording are played this long at most (as `tollgate audit
// replay` plays them by default).
const MOST_IDLE_S = 2;
const PLAYER = "/recordings/player/asciinema-player";

// Times as every admin page shows them (AdminTime, /ui/common.js): in UTC to the second,
// or relative with the UTC time on hover.
function when(us) {
  return AdminTime.utc(us);
}

// A session's length: under a second in milliseconds (as `tollgate audit sessions`
// says it), else as every admin page says a span.
function lasted(ms) {
  return ms < 1000 ? Math.round(ms) + " ms" : AdminTime.duration(ms);
}

// A moment of a recording: minutes, seconds and tenths (a line is decided in less).
function clock(seconds) {
  const tenths = Math.max(0, Math.floor(seconds * 10));
  const s = Math.floor(tenths / 10);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + "." + (tenths % 10);
}

function button(text, className) {
  const pressed = made("button", className, text);
  pressed.type = "button";
  return pressed;
}

function cut(text) {
  const whole = typeof text === "string" ? text : JSON.stringify(text, null, 2);
  return whole.length > TEXT_MOST ? whole.slice(0, TEXT_MOST) + " …(cut)" : whole;
}

// A labelled part of an entry: its label, then each text in a block of its own.
function part(label, texts, className) {
  const section = made("div", "part " + (className || ""));
  section.append(made("div", "label", label));
  for (const text of texts) {
    // Line by line: the text's newlines stay, every other control character is escaped.
    const block = made("div", "text");
    block.textContent = cut(text).split("\n").map(visible).join("\n");
    section.append(block);
  }
  return section;
}

// -- where the page is: #session=<id> | #live=<id> | #record=<id> | #identity=&since= --

function place() {
  return new URLSearchParams(location.hash.slice(1));
}

function hashOf(values) {
  return "#" + new URLSearchParams(values).toString();
}

// -- what a record says, read for the timeline -----------------------------------------

function bodyValue(body) {
  if (!body) return null;
  return body.value === undefined ? null : body.value;
}

function messageText(message) {
  const content = message.content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p.text === "string") ? p.text
      : JSON.stringify(p)).join("\n");
  }
  return content === null || content === undefined ? "" : JSON.stringify(content);
}

function toolCallText(call) {
  const fn = (call && call.function) || call || {};
  const args = typeof fn.arguments === "string" ? fn.arguments
    : JSON.stringify(fn.arguments || fn.input || {});
  return (fn.name || "?") + "(" + args + ")";
}

// The model's answer in an LLM response (OpenAI's choices, or Anthropic's content).
function answerOf(value) {
  const texts = [], calls = [];
  if (!value || typeof value !== "object") return { texts, calls };
  for (const choice of Array.isArray(value.choices) ? value.choices : []) {
    const message = (choice && choice.message) || {};
    if (message.content) texts.push(messageText(message));
    for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
      calls.push(toolCallText(call));
    }
  }
  if (value.type === "message" && Array.isArray(value.content)) {
    for (const block of value.content) {
      if (block && block.type === "text") texts.push(block.text);
      if (block && block.type === "tool_use") calls.push(toolCallText(block));
    }
  }
  return { texts, calls };
}

function chainLine(record) {
  const chain = made("div", "chain");
  chain.append("seq " + record.seq + " of writer " + visible(record.writer)
    + " · follows " + record.prev_hash.slice(0, 16) + "… · hash " + record.hash.slice(0, 16)
    + "… ");
  const check = made("span", record.hash_matches ? "ok" : "bad",
    record.hash_matches ? "(matches its content)" : "(does NOT match its content)");
  chain.append(check, record.checkpoint
    ? " · signed in checkpoint " + record.checkpoint.seq + " (key "
      + visible(record.checkpoint.key_id) + ")"
    : " · no signed checkpoint covers it yet");
  return chain;
}

function traceLink(traceId, template) {
  if (!template) return made("code", "trace", traceId);
  const a = link(traceId, template.replace("{trace_id}", encodeURIComponent(traceId)),
                 "trace");
  a.rel = "noreferrer";
  a.target = "_blank";
  return a;
}

// -- the timeline --------------------------------------------------------------------------

function mcpMethod(record) {
  const meaning = (record.content || {}).meaning || {};
  return meaning.mcp && typeof meaning.mcp.method === "string" ? meaning.mcp.method : null;
}

// MCP's plumbing, shown on demand: what of it a record is (initialize, a notification, a
// listing, ping, the event stream a GET opens, the session's end a DELETE asks), or null.
function plumbingOf(record) {
  const meaning = ((record.content || {}).meaning || {}).mcp;
  if (!meaning || typeof meaning !== "object") return null;
  const method = mcpMethod(record);
  if (method === null) {
    if (meaning.kind !== "stream") return null;
    return ((record.content.request || {}).method === "DELETE") ? "the session's end"
      : "event streams";
  }
  if (method.startsWith("notifications/")) return "notifications";
  if (!PLUMBING.has(method)) return null;
  return method.endsWith("/list") ? "listings" : method;
}

function isLine(record) {
  const request = (record.content || {}).request || {};
  return record.kind === "exchange" && request.method === "LINE";
}

function entry(record, template, pendingCalls) {
  const content = record.content || {};
  const request = content.request || {};
  const target = content.target ? content.target.name : "";
  const item = made("li", "entry " + record.action);
  item.dataset.id = record.id;
  item.dataset.kind = record.kind;
  item.dataset.trace = record.trace_id;
  item.tabIndex = -1;  // a marker on the player's timeline brings the focus here
  const head = made("div", "head");
  const what = content.what || [request.method, request.path].filter(Boolean).join(" ");
  head.append(link(record.kind + " " + record.id, hashOf({ record: record.id }), "record"),
              " · " + visible(when(record.started_us)) + " · "
              + (target ? visible(target) + " · " : ""));
  head.append(made("span", "what", what));
  head.append(" · " + visible(record.action)
              + (record.status === null ? "" : " " + record.status));
  const trace = made("div", "chain");
  trace.append("trace ", traceLink(record.trace_id, template));
  item.append(head, trace, chainLine(record));
  if (content.error) item.append(part("Not recorded whole", [content.error], "deny-text"));

  const sent = bodyValue(request.body);
  const response = content.response || {};
  const delivered = bodyValue(response.body);
  if (sent && Array.isArray(sent.messages)) {
    item.append(part("Prompt", sent.messages.map((m) => (m.role || "?") + ": "
      + messageText(m) + (Array.isArray(m.tool_calls)
        ? "\n→ " + m.tool_calls.map(toolCallText).join("\n→ ") : ""))));
  } else if (record.kind === "exchange" && request.body) {
    if (pendingCalls.length) {
      item.append(part("Caused by the model's tool call", pendingCalls.splice(0)));
    }
    item.append(part("Request body", [sent === null ? "(" + request.body.size
      + " bytes, " + (request.body.encoding || "kept by hash") + ")" : sent]));
  } else if (record.kind === "exchange" && pendingCalls.length) {
    item.append(part("Caused by the model's tool call", pendingCalls.splice(0)));
  }
  for (const decision of content.decisions || []) {
    const words = decision.phase + ": " + decision.action
      + (decision.rules.length ? " by " + decision.rules.join(", ") : "")
      + (decision.reasons.length ? " — " + decision.reasons.join("; ") : "");
    item.append(part("Decision", [words], decision.action === "deny" ? "deny-text" : ""));
  }
  const approval = content.approval;
  if (approval) {
    item.append(part("Approval", [approval.status + (approval.decided_by
      ? " by " + approval.decided_by + " at "
        + (approval.decided_us ? when(approval.decided_us) : "?") : "")
      + (approval.reason ? " — " + approval.reason : "")
      + (approval.summary ? "\nasked: " + approval.summary : "")]));
  }
  const meaning = content.meaning || {};
  if (meaning.alert) {
    item.append(part("Alert", [meaning.alert.severity + " " + meaning.alert.rule + ": "
      + meaning.alert.message]));
  }
  if (meaning.access) {
    item.append(part("Read of the record", [meaning.access.endpoint + " "
      + meaning.access.path + ": " + meaning.access.count + " records"]));
  }
  const answer = answerOf(delivered);
  if (answer.texts.length) item.append(part("The model's answer", answer.texts));
  if (answer.calls.length) {
    item.append(part("Its tool calls", answer.calls));
    pendingCalls.push(...answer.calls);
  } else if (delivered !== null && !answer.texts.length && record.kind === "exchange") {
    // (An approver's act answers with the approval, shown above; its record has it all.)
    item.append(part("Response (as the agent got it, masked)", [delivered]));
  }
  return item;
}

function showPlumbing(shown) {
  const hidden = timeline.querySelectorAll("li.plumbing");
  const present = new Set([...hidden].map((item) => item.dataset.plumbing));
  const what = PLUMBING_NAMES.filter((name) => present.has(name));
  for (const item of hidden) item.hidden = !shown;
  plumbingToggle.hidden = hidden.length === 0;
  plumbingToggle.setAttribute("aria-expanded", String(shown));
  plumbingToggle.textContent = (shown ? "Hide " : "Show ") + hidden.length
    + " MCP protocol " + (hidden.length === 1 ? "exchange" : "exchanges")
    + " (" + what.join(", ") + ")";
}

function summaryText(summary) {
  if (!summary) return "";
  const kinds = summary.kinds.map((k) => KIND_NAMES[k] || k).join(" + ") || "no known kind";
  return kinds + " · " + (summary.identities.map((i) => i === null ? "(anonymous)" : i)
    .join(", ") || "-") + " · " + (summary.targets.join(", ") || "no target")
    + " · began " + when(summary.first_us) + ", lasted " + lasted(summary.duration_ms)
    + " · " + summary.exchanges + (summary.exchanges === 1 ? " exchange: " : " exchanges: ")
    + summary.allowed + " allowed, " + summary.refused + " refused, " + summary.held
    + " held, " + summary.masked + " masked";
}

// A session as people name it: whose, where (its id, a UUID, is shown beside).
function sessionName(identities, targets) {
  const who = identities.map((i) => i === null ? "(anonymous)" : i).join(", ") || "nobody known";
  return who + (targets.length ? " on " + targets.join(", ") : "");
}

let shownSession = 0;  // the session drawn last: a recording arriving late for another is dropped

function showSession(answer) {
  const drawing = ++shownSession;
  document.getElementById("session").hidden = false;
  const summary = answer.summary;
  document.getElementById("session-name").textContent = summary ? visible(
    sessionName(summary.identities, summary.targets) + ", began " + when(summary.first_us))
    : "Session";
  document.getElementById("session-id").textContent = visible(answer.session_id);
  const grouping = answer.grouping;
  document.getElementById("session-rule").textContent = grouping
    ? visible(grouping.words) + " (" + visible(grouping.rule) + ")" : "(no record says)";
  document.getElementById("session-summary").textContent = visible(summaryText(answer.summary));
  timeline.replaceChildren();
  const pendingCalls = [];
  for (const record of answer.records) {
    const item = entry(record, answer.trace_url, pendingCalls);
    const plumbing = plumbingOf(record);
    if (plumbing !== null) {
      item.classList.add("plumbing");
      item.dataset.plumbing = plumbing;
    }
    timeline.append(item);
  }
  if (answer.truncated) timeline.append(made("li", "empty", "(more records than shown)"));
  showPlumbing(false);
  stopPlayers();
  terminals.replaceChildren();
  for (const meta of answer.terminals || []) {
    const view = terminalView(meta);
    terminals.append(view.block);
    call("/recordings/terminal/" + encodeURIComponent(meta.recording_id))
      .then((recording) => { if (drawing === shownSession) play(view, recording); })
      .catch((error) => { view.verdict.textContent = visible(String(error.message)); });
  }
}

plumbingToggle.addEventListener("click", () => {
  showPlumbing(plumbingToggle.getAttribute("aria-expanded") !== "true");
});

// -- terminal recordings --------------------------------------------------------------------

let playerLoaded = null;  // the player's script and stylesheet, loaded once when needed
const players = [];

function loadPlayer() {
  if (!playerLoaded) {
    playerLoaded = new Promise((resolve, reject) => {
      const style = document.createElement("link");
      style.rel = "stylesheet";
      style.href = PLAYER + ".css";
      document.head.append(style);
      const script = document.createElement("script");
      script.src = PLAYER + ".min.js";
      script.onload = () => window.AsciinemaPlayer ? resolve(window.AsciinemaPlayer)
        : reject(new Error("no player"));
      script.onerror = () => reject(new Error("no player"));
      document.head.append(script);
    });
  }
  return playerLoaded;
}

// What the terminal showed, as plain text: escape sequences dropped, a line rewritten
// after a carriage return kept as rewritten, erased characters gone.
function plainText(output) {
  let text = output
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g, "")
    .replace(/\x1b[P^_X][\s\S]*?(?:\x1b\\|$)/g, "")
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b[ -/]*[0-~]/g, "")
    .replace(/\r+\n/g, "\n");
  text = text.split("\n").map((line) => line.slice(line.lastIndexOf("\r") + 1)).join("\n");
  for (let before = ""; before !== text;) {
    before = text;
    text = text.replace(/[^\n\x08]\x08/g, "");
  }
  return text;
}

// An asciicast v2 recording read for playing: its idle gaps cut to MOST_IDLE_S, its
// markers (tollgate's, one per decided line: "allow [trace …]") at their times, its
// output as plain text.
function readCast(text) {
  const lines = text.split("\n").filter((line) => line.trim());
  let header = {};
  try { header = JSON.parse(lines[0]) || {}; } catch (error) { /* played at 80x24 */ }
  const events = [], markers = [];
  let output = "", last = 0, at = 0;
  for (const line of lines.slice(1)) {
    let event;
    try { event = JSON.parse(line); } catch (error) { continue; }
    if (!Array.isArray(event) || typeof event[0] !== "number") continue;
    at += Math.min(Math.max(event[0] - last, 0), MOST_IDLE_S);
    last = event[0];
    const time = Math.round(at * 1000) / 1000;
    if (event[1] === "m") {
      const found = /\[trace ([0-9a-f]{32})\]/.exec(String(event[2]));
      markers.push({ time, label: String(event[2]), trace: found ? found[1] : null });
      continue;
    }
    if (event[1] === "o") output += String(event[2]);
    events.push([time, event[1], event[2]]);
  }
  const cast = [JSON.stringify({ version: 2, width: header.width || 80,
                                 height: header.height || 24 }),
                ...events.map((event) => JSON.stringify(event))].join("\n") + "\n";
  return { cast, markers, duration: Math.round(at * 1000) / 1000,
           transcript: plainText(output) };
}

function terminalView(meta) {
  const block = made("section", "terminal");
  block.dataset.recording = meta.recording_id;
  const title = made("h3", "", "Terminal recording " + meta.recording_id);
  const verdict = made("p", "verdict", "Reading the recording…");
  const missing = made("p", "player-missing", "The terminal player is not installed on "
    + "this gateway (`make` installs it from the npm registry): the decisions below and "
    + "this text transcript show the session.");
  missing.hidden = true;
  const controls = made("div", "controls");
  controls.setAttribute("role", "group");
  controls.setAttribute("aria-label", "Player of terminal recording " + meta.recording_id);
  const playButton = button("Play", "play");
  const speedLabel = made("label", "", "Speed ");
  const speed = made("select", "speed");
  for (const value of ["0.5", "1", "2", "4", "8"]) {
    const option = made("option", "", value + "×");
    option.value = value;
    option.selected = value === "1";
    speed.append(option);
  }
  speedLabel.append(speed);
  const time = made("span", "clock", "0:00");
  controls.append(playButton, speedLabel, time);
  const screen = made("div", "screen");
  const track = made("div", "track");
  const position = made("input", "position");
  position.type = "range";
  position.min = "0";
  position.step = "0.1";
  position.value = "0";
  position.setAttribute("aria-label", "Position in the recording");
  track.append(position);
  const markerList = made("ol", "markers");
  markerList.setAttribute("aria-label", "Decided lines: each plays from its decision "
    + "and shows it in the list below");
  const transcript = made("details", "transcript");
  transcript.append(made("summary", "", "Text transcript"));
  const text = made("pre", "transcript");
  text.tabIndex = 0;
  transcript.append(text);
  controls.hidden = track.hidden = true;
  block.append(title, verdict, missing, controls, screen, track, markerList, transcript);
  const view = { block, verdict, missing, controls, playButton, speed, time, screen, track,
                 position, markerList, transcript, text, player: null,
                 playing: false, at: 0, read: null, timer: null };
  playButton.addEventListener("click", () => {
    if (!view.player) return;
    if (view.playing) view.player.pause(); else view.player.play();
  });
  speed.addEventListener("change", () => {
    if (!view.player) return;
    view.at = view.player.getCurrentTime() || view.at;
    makePlayer(view, view.playing);
  });
  position.addEventListener("input", () => seek(view, Number(position.value)));
  return view;
}

function showTime(view, at) {
  view.at = Math.min(Math.max(at, 0), view.read.duration);
  view.position.value = String(view.at);
  view.time.textContent = clock(view.at) + " / " + clock(view.read.duration);
}

function setPlaying(view, playing) {
  view.playing = playing;
  view.playButton.textContent = playing ? "Pause" : "Play";
  view.block.dataset.playing = String(playing);
  clearInterval(view.timer);
  if (playing) {
    view.timer = setInterval(() => showTime(view, view.player.getCurrentTime() || 0), 200);
  } else if (view.player) {
    showTime(view, view.player.getCurrentTime() || view.at);
  }
}

function makePlayer(view, autoPlay) {
  if (view.player) view.player.dispose();
  clearInterval(view.timer);
  view.screen.replaceChildren();
  const speed = Number(view.speed.value);
  view.player = window.AsciinemaPlayer.create({ data: view.read.cast }, view.screen, {
    controls: false, fit: "width", preload: true, autoPlay, speed, startAt: view.at,
    markers: view.read.markers.map((marker) => [marker.time, marker.label]),
  });
  view.screen.dataset.speed = String(speed);
  for (const name of ["play", "playing"]) {
    view.player.addEventListener(name, () => setPlaying(view, true));
  }
  for (const name of ["pause", "ended"]) {
    view.player.addEventListener(name, () => setPlaying(view, false));
  }
  view.player.addEventListener("marker", ({ index }) => {
    const marker = view.read.markers[index];
    if (marker) markCurrent(decisionOf(marker));
  });
  setPlaying(view, autoPlay);
}

function seek(view, at) {
  showTime(view, at);
  if (view.player) view.player.seek(view.at);
}

function decisionOf(marker) {
  if (!marker.trace) return null;
  return timeline.querySelector('li.entry[data-kind="exchange"][data-trace="'
                                + marker.trace + '"]');
}

function markCurrent(item) {
  for (const other of timeline.querySelectorAll("li.entry.current")) {
    other.classList.remove("current");
  }
  if (item) item.classList.add("current");
}

// A marker chosen: the recording at that moment, and its decision in the list, focused.
function jump(view, marker) {
  seek(view, marker.time);
  const item = decisionOf(marker);
  markCurrent(item);
  if (item) {
    item.focus({ preventScroll: true });
    item.scrollIntoView({ block: "center" });
  }
}

function play(view, recording) {
  view.verdict.textContent = visible(recording.detail
    + (recording.missing.length ? "; chunks " + recording.missing.join(", ") + " are missing"
      : "") + (recording.truncated ? "; too long to show whole here" : ""));
  view.verdict.classList.toggle("bad", recording.verified === false);
  view.read = readCast(recording.cast);
  view.text.textContent = view.read.transcript.split("\n").map(visible).join("\n");
  view.position.max = String(view.read.duration);
  showTime(view, 0);
  view.markerList.replaceChildren();
  for (const marker of view.read.markers) {
    const item = decisionOf(marker);
    const action = marker.label.split(" ")[0];
    const words = clock(marker.time) + " " + action + ": "
      + (item ? item.querySelector(".what").textContent : marker.label);
    const tick = made("span", "tick " + action);
    tick.dataset.at = String(view.read.duration ? marker.time / view.read.duration : 0);
    tick.title = words;
    tick.setAttribute("aria-hidden", "true");  // the list below is the keyboard's way
    tick.addEventListener("click", () => jump(view, marker));
    view.track.append(tick);
    const choose = button(words, action);
    choose.addEventListener("click", () => jump(view, marker));
    const li = made("li");
    li.append(choose);
    view.markerList.append(li);
    if (item && !item.querySelector("button.at")) {
      const at = button("Play from here (" + clock(marker.time) + " in the recording)", "at");
      at.addEventListener("click", () => {
        seek(view, marker.time);
        view.block.scrollIntoView({ block: "start" });
        view.playButton.focus({ preventScroll: true });
      });
      item.querySelector(".head").append(at);
    }
  }
  loadPlayer().then(() => {
    view.controls.hidden = view.track.hidden = false;
    spread(view.track);
    players.push(view);
    makePlayer(view, false);
  }).catch(() => {
    view.missing.hidden = false;
    view.transcript.open = true;
  });
}

// Each tick at its moment on the track, or just after the one before when lines were
// decided closer together than the ticks are wide: each can be seen and chosen.
const TICK_GAP_PX = 7;

function spread(track) {
  const width = track.clientWidth;
  if (!width) return;
  let last = -Infinity;
  for (const tick of track.querySelectorAll(".tick")) {
    const left = Math.max(Number(tick.dataset.at) * width, last + TICK_GAP_PX);
    tick.style.left = (100 * Math.min(left, width) / width) + "%";
    last = left;
  }
}

window.addEventListener("resize", () => {
  for (const view of players) spread(view.track);
});

function stopPlayers() {
  for (const view of players.splice(0)) {
    clearInterval(view.timer);
    if (view.player) view.player.dispose();
  }
}

// -- one record, or one trace's -------------------------------------------------------------

// A record's content, readable: each part folded under its name (what it did, how it
// ended, its decisions and approval open), every time in microseconds also said in the
// viewer's own time zone.
const OPEN_PARTS = new Set(["what", "outcome", "decisions", "approval"]);

function localTime(us) {
  return new Date(us / 1000).toLocaleString(undefined, { timeZoneName: "short" });
}

function withTimes(value) {
  if (Array.isArray(value)) return value.map(withTimes);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [key, each] of Object.entries(value)) {
    out[key] = key.endsWith("_us") && Number.isInteger(each)
      ? each + " (" + localTime(each) + ")" : withTimes(each);
  }
  return out;
}

function contentView(content) {
  const box = made("div", "content");
  for (const [key, value] of Object.entries(withTimes(content))) {
    const part = made("details", "part");
    part.dataset.part = key;
    part.open = OPEN_PARTS.has(key);
    const shown = made("pre");
    shown.textContent = (typeof value === "string" ? value : JSON.stringify(value, null, 2))
      .split("\n").map(visible).join("\n");
    part.append(made("summary", null, key), shown);
    box.append(part);
  }
  return box;
}

function showRecords(answer) {
  document.getElementById("record").hidden = false;
  document.getElementById("record-key").textContent = visible(answer.key);
  const list = document.getElementById("record-list");
  list.replaceChildren();
  for (const record of answer.records) {
    const article = made("article", "record");
    article.dataset.id = record.id;
    const head = made("div", "head", record.kind + " " + record.id + ", " + record.action
      + (record.status === null ? "" : " " + record.status) + ", " + when(record.started_us));
    const session = made("div", "chain");
    session.append("session ", link(record.session_id, hashOf({ session: record.session_id }),
                                    "session"), " · trace ",
                   traceLink(record.trace_id, answer.trace_url));
    article.append(head, session, chainLine(record), contentView(record.content));
    list.append(article);
  }
  if (answer.truncated) list.append("(more records than shown)");
}

// -- sessions found --------------------------------------------------------------------------

const LISTED = ["identity", "target", "text", "kind", "since", "limit"];

// The list's place: its filters, sort, order and page, as the hash says (or the defaults).
function listing(where) {
  const sort = where.get("sort") || "start";
  return {
    sort, order: where.get("order") || FIRST_ORDER[sort] || "desc",
    page: Math.max(1, parseInt(where.get("page") || "1", 10) || 1),
    limit: where.get("limit") || PER_PAGE,
  };
}

function listHash(changes) {
  const values = Object.fromEntries(place());
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) delete values[name]; else values[name] = value;
  }
  return hashOf(values);
}

function showSessions(answer, shown) {
  document.getElementById("sessions").hidden = false;
  for (const th of document.querySelectorAll("#session-list th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort !== shown.sort ? "none"
      : shown.order === "asc" ? "ascending" : "descending");
  }
  sessionRows.replaceChildren();
  for (const each of answer.sessions) {
    const row = sessionRows.insertRow();
    row.dataset.session = each.session_id;
    row.insertCell().append(AdminTime.element(each.first_us));
    row.insertCell().append(link(sessionName(each.identities, each.targets),
                                 hashOf({ session: each.session_id }), "session"),
                            made("span", "id", each.session_id));
    cell(row, each.kinds.map((k) => KIND_NAMES[k] || k).join(" + ") || "-");
    cell(row, each.identities.map((i) => i === null ? "(anonymous)" : i).join(", ") || "-");
    cell(row, lasted(each.duration_ms), "number");
    for (const name of ["exchanges", "allowed", "refused", "held", "masked"]) {
      cell(row, each[name], "number");
    }
  }
  if (answer.sessions.length === 0) {
    cell(sessionRows.insertRow(), "No session found.", "empty").colSpan = 10;
  }
  const first = answer.offset + 1;
  document.getElementById("page-place").textContent = answer.sessions.length
    ? "Page " + shown.page + ": sessions " + first + " to "
      + (first + answer.sessions.length - 1)
    : "Page " + shown.page;
  document.getElementById("previous").disabled = answer.offset === 0;
  document.getElementById("next").disabled = !answer.more;
  document.getElementById("sessions-note").textContent = answer.sorted_truncated
    ? "Sorted among the " + answer.sorted_among + " latest begun sessions of the period: "
      + "narrow it (since, identity, target, kind) to sort them all." : "";
}

for (const th of document.querySelectorAll("#session-list th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const shown = listing(place());
    const sort = th.dataset.sort;
    const order = sort !== shown.sort ? FIRST_ORDER[sort] || "desc"
      : shown.order === "asc" ? "desc" : "asc";
    location.hash = listHash({ sort, order, page: null });
  });
}
document.getElementById("previous").addEventListener("click", () => {
  const page = listing(place()).page - 1;
  location.hash = listHash({ page: page > 1 ? String(page) : null });
});
document.getElementById("next").addEventListener("click", () => {
  location.hash = listHash({ page: String(listing(place()).page + 1) });
});

// A window of minutes (`from`, `until`: Unix seconds, as the monitor's chart brushes them)
// in the place of `since`: said above the list, with the way back to any time.
function showWindow(where) {
  const note = document.getElementById("window");
  const from = where.get("from"), until = where.get("until");
  note.hidden = !(from && until);
  if (note.hidden) return null;
  note.replaceChildren("Sessions with records from " + AdminTime.utc(Number(from) * 1e6)
                       + " to " + AdminTime.utc(Number(until) * 1e6) + " (the monitor's "
                       + "chart). ", link("Any time", listHash({ from: null, until: null })));
  return { from, until };
}

// -- reading -----------------------------------------------------------------------------------

// -- a live session, watched as it happens -------------------------------------------------
// GET /sessions/live/{id}/watch (admin/live/watch.py): one JSON event a line, read as the
// stream comes. A terminal's screen plays in the player in live mode: a driver of the
// page's own that writes each chunk's output as it arrives.

let liveWatch = null;  // the open watch's AbortController

function stopLive() {
  if (liveWatch) liveWatch.abort();
  liveWatch = null;
}

function liveScreen(header) {
  const block = made("div", "terminal", "");
  const source = { out: null, queue: [] };
  source.write = (text) => (source.out ? source.out(text) : source.queue.push(text));
  const driver = ({ dispatch }) => ({
    init() { dispatch("reset", { size: { cols: header.width, rows: header.height } }); },
    play() {
      dispatch("play");
      dispatch("playing");
      source.out = (text) => dispatch("output", text);
      for (const text of source.queue.splice(0)) source.out(text);
      return true;
    },
    stop() { source.out = null; },
  });
  document.getElementById("live-screens").append(block);
  loadPlayer().then((player) => {
    player.create(driver, block, { autoPlay: true, cols: header.width, rows: header.height,
                                   fit: "width", terminalFontSize: "small" });
  }).catch(() => { block.textContent = "(the terminal player is not installed)"; });
  return source;
}

// A record's place in the session, as the record orders it (admin/recordings/api.py):
// when it began, then its writer's chain. Records are stored as they end, not as they
// begin, so each is placed rather than appended.
function recordOrder(a, b) {
  if (a.started_us !== b.started_us) return a.started_us < b.started_us ? -1 : 1;
  if (a.writer !== b.writer) return a.writer < b.writer ? -1 : 1;
  return a.seq - b.seq;
}

// The words a decision is shown with (as the session's timeline and the CLI name them).
const DECIDED = { allow: "allowed", deny: "refused", hold: "held", none: "not decided" };

// One record as a line of the live view: an exchange by its decision and what it did; any
// other record (someone starting to watch, an end, an alert, an approval) by its words
// (`said`), never by an action it has as a record.
function liveRecord(r) {
  const item = made("li", r.said === null ? "live-" + r.action : "live-note");
  item.dataset.started = String(r.started_us);
  item.dataset.writer = r.writer;
  item.dataset.seq = String(r.seq);
  item.append(made("span", "when", AdminTime.utc(r.started_us).slice(11)), " ");
  if (r.said === null) {
    item.append(made("span", "decision", DECIDED[r.action] || r.action), " ",
                made("span", "what", r.what || r.method),
                r.typist ? made("span", "typist", " (typed by " + r.typist + ")") : "");
  } else {
    item.append(made("span", "said", r.said));
  }
  const list = document.getElementById("live-records");
  const key = { started_us: r.started_us, writer: r.writer, seq: r.seq };
  const after = [...list.children].find((shown) => recordOrder(key, {
    started_us: Number(shown.dataset.started), writer: shown.dataset.writer,
    seq: Number(shown.dataset.seq) }) < 0);
  list.insertBefore(item, after || null);
}

function liveEvent(event, screens) {
  const status = document.getElementById("live-status");
  if (event.event === "session") {
    const s = event.session;
    status.textContent = visible("Watching " + s.front + " of " + s.identity + " on "
                                 + (s.target || "-") + ", held by " + s.replica
                                 + ", since " + AdminTime.utc(s.started_us));
    liveHolds(s.holds);
  }
  if (event.event === "session" || event.event === "attendance") {
    const people = event.attendees.map((a) => a.who + " (" + a.role
                                       + (a.moderator ? ", moderator" : "") + ")");
    document.getElementById("live-attending").textContent =
      visible("Attending: " + (people.join(", ") || "nobody"));
  } else if (event.event === "activity") {
    liveHolds(event.holds);
  } else if (event.event === "record") {
    liveRecord(event.record);
  } else if (event.event === "screen") {
    for (const text of event.cast.split("\n")) {
      if (!text.trim()) continue;
      const cast = JSON.parse(text);
      if (!Array.isArray(cast)) screens.set(event.recording_id, liveScreen(cast));
      else if (cast[1] === "o" && screens.has(event.recording_id)) {
        screens.get(event.recording_id).write(cast[2]);
      }
    }
  } else if (event.event === "ended") {
    status.textContent = visible("Ended: " + event.message);
    liveHolds(0);
  }
}

// What waits now (held for an approval or a moderator): not in the record until decided.
function liveHolds(holds) {
  const held = document.getElementById("live-holds");
  held.hidden = !holds;
  held.textContent = holds ? holds + (holds === 1 ? " exchange waits" : " exchanges wait")
    + " now, held for an approval or a moderator (recorded once decided)." : "";
}

async function watchLive(sessionId) {
  stopLive();
  const watch = new AbortController();
  liveWatch = watch;
  document.getElementById("live").hidden = false;
  document.getElementById("live-id").textContent = visible(sessionId);
  for (const id of ["live-records", "live-screens"]) {
    document.getElementById(id).replaceChildren();
  }
  const reply = await fetch("/sessions/live/" + encodeURIComponent(sessionId) + "/watch",
                            { headers: apiHeaders(), signal: watch.signal });
  if (!reply.ok) {
    const answer = await reply.json().catch(() => ({}));
    throw new Error((answer.error || reply.status) + ": " + (answer.message || reply.statusText));
  }
  say("Watching live since " + AdminTime.utc(Date.now() * 1000).slice(11)
      + " (this watch is recorded).", false);
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  const screens = new Map();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.trim()) liveEvent(JSON.parse(line), screens);
    }
  }
}

// A session open now gets a link to its live view (for the live sessions' viewers).
async function offerLive(sessionId) {
  const link = document.getElementById("live-link");
  link.hidden = true;
  const reply = await fetch("/sessions/live/" + encodeURIComponent(sessionId),
                            { headers: apiHeaders() }).catch(() => null);
  if (reply && reply.ok && place().get("session") === sessionId) {
    document.getElementById("live-watch").href = hashOf({ live: sessionId });
    link.hidden = false;
  }
}

async function follow() {
  if (!hasCaller()) return;
  const where = place();
  recordings.hidden = false;
  for (const id of ["sessions", "session", "record", "live"]) {
    document.getElementById(id).hidden = true;
  }
  if (!where.has("session")) {
    stopPlayers();
    terminals.replaceChildren();
  }
  stopLive();
  try {
    if (where.has("live")) {
      await watchLive(where.get("live"));
    } else if (where.has("session")) {
      offerLive(where.get("session"));
      showSession(await call("/recordings/sessions/"
                             + encodeURIComponent(where.get("session"))));
    } else if (where.has("record")) {
      showRecords(await call("/recordings/records/" + encodeURIComponent(where.get("record"))));
    } else {
      const shown = listing(where);
      const query = new URLSearchParams();
      for (const name of LISTED) {
        const value = where.get(name);
        const field = document.getElementById(name);
        field.value = value || (name === "since" ? "7d" : name === "limit" ? PER_PAGE : "");
        if (value) query.set(name, value);
      }
      const window = showWindow(where);
      if (window) {
        query.set("from", window.from);
        query.set("until", window.until);
      }
      query.set("limit", shown.limit);
      query.set("sort", shown.sort);
      query.set("order", shown.order);
      query.set("offset", String((shown.page - 1) * Number(shown.limit)));
      showSessions(await call("/recordings/sessions?" + query.toString()), shown);
    }
    say("Read at " + AdminTime.utc(Date.now() * 1000).slice(11) + " (this read is recorded).",
        false);
  } catch (error) {
    if (error.name === "AbortError") return;  // a live view left for another place
    say(String(error.message), true);
  }
}

signIn(follow, () => {
  recordings.hidden = true;
  stopPlayers();
  sessionRows.replaceChildren();
  timeline.replaceChildren();
  terminals.replaceChildren();
  document.getElementById("record-list").replaceChildren();
});
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const values = {};
  for (const name of LISTED) {
    const value = document.getElementById(name).value.trim();
    if (value && !(name === "limit" && value === PER_PAGE)) values[name] = value;
  }
  const shown = listing(place());
  if (shown.sort !== "start") values.sort = shown.sort;
  if (place().has("order")) values.order = shown.order;
  location.hash = hashOf(values);
});
// The compliance report: its JSON, HTML and PDF from one run, each signed, in one zip
// (GET /recordings/report?format=zip). Downloading it is a read of the record like any
// other, and recorded.
document.getElementById("report").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = new URLSearchParams({ format: "zip" });
  const since = document.getElementById("report-since").value.trim();
  const target = document.getElementById("report-target").value.trim();
  if (since) query.set("since", since);
  if (target) query.set("target", target);
  // Its own line: the list's reads, which say so on the page's, never overwrite it.
  const told = document.getElementById("report-status");
  const tell = (text, isError) => {
    told.textContent = visible(text);
    told.classList.toggle("error", isError);
  };
  tell("Making the report (the record is verified first)…", false);
  const reply = await fetch("/recordings/report?" + query.toString(),
                            { headers: apiHeaders() });
  if (!reply.ok) {
    const answer = await reply.json().catch(() => ({}));
    tell((answer.error || reply.status) + ": " + (answer.message || reply.statusText), true);
    return;
  }
  const named = /filename="([^"]+)"/.exec(reply.headers.get("content-disposition") || "");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await reply.blob());
  link.download = named ? named[1] : "tollgate-report.zip";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  tell("Downloaded " + link.download + ": the report's JSON, HTML and PDF, each signed "
      + "(tollgate audit verify-report checks any). This read is recorded.", false);
});
window.addEventListener("hashchange", follow);
setInterval(() => AdminTime.update(sessionRows), 30000);  // "3 min ago" stays true
if (hasCaller()) follow();
