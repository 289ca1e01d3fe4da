// The recordings page: sessions found by identity and target, one agent run as a
// timeline (the prompt, the model's answer and tool calls, the requests they led to, the
// decisions with their rules and reasons, the approvals, the masked responses), and any
// record as stored with its place in the chain. It reads the API with the reader's own
// token (kept for this tab only); each read is itself recorded. Everything shown comes
// from what agents did, so it is set as text, never as markup (`visible`).
"use strict";

const recordings = document.getElementById("recordings");
const sessionRows = document.querySelector("#session-list tbody");
const timeline = document.getElementById("timeline");
const TEXT_MOST = 4000;  // characters of one message shown; the record has them all

function element(name, className, text) {
  const made = document.createElement(name);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = visible(text);
  return made;
}

function link(text, hash, className) {
  const a = element("a", className, text);
  a.href = hash;
  return a;
}

function when(us) {
  return new Date(us / 1000).toLocaleString();
}

function cut(text) {
  const whole = typeof text === "string" ? text : JSON.stringify(text, null, 2);
  return whole.length > TEXT_MOST ? whole.slice(0, TEXT_MOST) + " …(cut)" : whole;
}

// A labelled part of an entry: its label, then each text in a block of its own.
function part(label, texts, className) {
  const section = element("div", "part " + (className || ""));
  section.append(element("div", "label", label));
  for (const text of texts) {
    // Line by line: the text's newlines stay, every other control character is escaped.
    const block = element("div", "text");
    block.textContent = cut(text).split("\n").map(visible).join("\n");
    section.append(block);
  }
  return section;
}

// -- where the page is: #session=<id> | #record=<id or trace> | #identity=&target=&since= --

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
  const chain = element("div", "chain");
  chain.append("seq " + record.seq + " of writer " + visible(record.writer)
    + " · follows " + record.prev_hash.slice(0, 16) + "… · hash " + record.hash.slice(0, 16)
    + "… ");
  const check = element("span", record.hash_matches ? "ok" : "bad",
    record.hash_matches ? "(matches its content)" : "(does NOT match its content)");
  chain.append(check, record.checkpoint
    ? " · signed in checkpoint " + record.checkpoint.seq + " (key "
      + visible(record.checkpoint.key_id) + ")"
    : " · no signed checkpoint covers it yet");
  return chain;
}

function traceLink(traceId, template) {
  if (!template) return element("code", "trace", traceId);
  const a = link(traceId, template.replace("{trace_id}", encodeURIComponent(traceId)),
                 "trace");
  a.rel = "noreferrer";
  a.target = "_blank";
  return a;
}

// -- the timeline --------------------------------------------------------------------------

function entry(record, template, pendingCalls) {
  const content = record.content || {};
  const request = content.request || {};
  const target = content.target ? content.target.name : "";
  const item = element("li", "entry " + record.action);
  item.dataset.id = record.id;
  item.dataset.kind = record.kind;
  const head = element("div", "head");
  head.append(link(record.kind + " " + record.id, hashOf({ record: record.id }), "record"),
              " · " + visible(when(record.started_us)) + " · "
              + visible([target, request.method, request.path].filter(Boolean).join(" "))
              + " · " + visible(record.action)
              + (record.status === null ? "" : " " + record.status));
  const trace = element("div", "chain");
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

function showSession(answer) {
  document.getElementById("session").hidden = false;
  document.getElementById("session-id").textContent = visible(answer.session_id);
  const first = answer.records.find((r) => r.content && r.content.session_id
                                      === answer.session_id);
  const rule = first && first.content.session_rule;
  document.getElementById("session-rule").textContent = rule
    ? "(grouped by " + visible(rule) + ")" : "";
  timeline.replaceChildren();
  const pendingCalls = [];
  for (const record of answer.records) {
    timeline.append(entry(record, answer.trace_url, pendingCalls));
  }
  if (answer.truncated) timeline.append(element("li", "empty", "(more records than shown)"));
}

// -- one record, or one trace's -------------------------------------------------------------

function showRecords(answer) {
  document.getElementById("record").hidden = false;
  document.getElementById("record-key").textContent = visible(answer.key);
  const list = document.getElementById("record-list");
  list.replaceChildren();
  for (const record of answer.records) {
    const article = element("article", "record");
    article.dataset.id = record.id;
    const head = element("div", "head", record.kind + " " + record.id + ", " + record.action
      + (record.status === null ? "" : " " + record.status) + ", " + when(record.started_us));
    const session = element("div", "chain");
    session.append("session ", link(record.session_id, hashOf({ session: record.session_id }),
                                    "session"), " · trace ",
                   traceLink(record.trace_id, answer.trace_url));
    const content = element("pre", "content");
    content.textContent = JSON.stringify(record.content, null, 2).split("\n")
      .map(visible).join("\n");
    article.append(head, session, chainLine(record), content);
    list.append(article);
  }
  if (answer.truncated) list.append("(more records than shown)");
}

// -- sessions found --------------------------------------------------------------------------

function showSessions(answer) {
  document.getElementById("sessions").hidden = false;
  sessionRows.replaceChildren();
  for (const each of answer.sessions) {
    const row = sessionRows.insertRow();
    row.dataset.session = each.session_id;
    cell(row, when(each.last_us));
    row.insertCell().append(link(each.session_id, hashOf({ session: each.session_id }),
                                 "session"));
    cell(row, each.identity);
    cell(row, each.targets.join(", "));
    cell(row, each.records);
  }
  if (answer.sessions.length === 0) {
    cell(sessionRows.insertRow(), "No session found.", "empty").colSpan = 5;
  }
}

// -- reading -----------------------------------------------------------------------------------

async function follow() {
  if (!sessionStorage.getItem(KEY)) return;
  const where = place();
  recordings.hidden = false;
  for (const id of ["sessions", "session", "record"]) {
    document.getElementById(id).hidden = true;
  }
  try {
    if (where.has("session")) {
      showSession(await call("/recordings/sessions/"
                             + encodeURIComponent(where.get("session"))));
    } else if (where.has("record")) {
      showRecords(await call("/recordings/records/" + encodeURIComponent(where.get("record"))));
    } else {
      const query = new URLSearchParams();
      for (const name of ["identity", "target", "since"]) {
        const value = where.get(name);
        document.getElementById(name).value = value || (name === "since" ? "7d" : "");
        if (value) query.set(name, value);
      }
      showSessions(await call("/recordings/sessions?" + query.toString()));
    }
    say("Read at " + new Date().toLocaleTimeString() + " (this read is recorded).", false);
  } catch (error) {
    say(String(error.message), true);
  }
}

signIn(follow, () => {
  recordings.hidden = true;
  sessionRows.replaceChildren();
  timeline.replaceChildren();
  document.getElementById("record-list").replaceChildren();
});
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const values = {};
  for (const name of ["identity", "target", "since"]) {
    const value = document.getElementById(name).value.trim();
    if (value) values[name] = value;
  }
  location.hash = hashOf(values);
});
window.addEventListener("hashchange", follow);
if (sessionStorage.getItem(KEY)) follow();
