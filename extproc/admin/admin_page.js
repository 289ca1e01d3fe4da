// What the admin pages (approvals, monitor, recordings) share: the signed-in token, the API
// call, and agents' text made visible. Everything these pages show comes from what agents did,
// so it is set as text, never as markup, with its control and invisible characters
// shown as escapes (`visible`). Served at /ui/common.js, before each page's own script.
"use strict";

// The token the viewer pasted, kept for this tab only; one sign-in for every page.
const KEY = "tollgate.approver-token";

// The page's sign-in form (#login, its #token field) and its #forget button: `show` reads
// and draws with the token just given (and at load, when the tab has one); `clear` takes
// down what was shown once it is forgotten.
function signIn(show, clear) {
  const tokenInput = document.getElementById("token");
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, tokenInput.value.trim());
    tokenInput.value = "";
    show();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    clear();
    say("Token forgotten.", false);
  });
}

function say(text, isError) {
  const statusLine = document.getElementById("status");
  statusLine.textContent = visible(text);
  statusLine.className = isError ? "error" : "";
}

// The admin API with the viewer's token; a refusal becomes an Error with its code.
async function call(path, method = "GET", body = undefined) {
  const token = sessionStorage.getItem(KEY);
  const headers = { "authorization": "Bearer " + token };
  if (body !== undefined) headers["content-type"] = "application/json";
  const reply = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error((answer.error || reply.status) + ": "
                            + (answer.message || reply.statusText));
    error.status = reply.status;  // 401: the token is missing, expired or not trusted
    error.code = answer.error;
    throw error;
  }
  return answer;
}

// Times as every surface shows them: the CLI and the report in UTC ("2026-11-25
// 23:33:15 UTC"), the pages relative ("3 min ago") with that UTC time on hover.
const AdminTime = Object.freeze({
  // Microseconds since the epoch, in UTC to the second.
  utc(us) {
    return new Date(us / 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  },
  // A span of milliseconds, in its two largest units: "45 s", "3 min 5 s", "2 h 10 min"
  // (minutes alone from 10 min).
  duration(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 10 && seconds % 60) return minutes + " min " + (seconds % 60) + " s";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
    return Math.floor(hours / 24) + " days";
  },
  // "3 min ago", "in 5 min", "just now".
  relative(us, nowMs = Date.now()) {
    const ms = us / 1000 - nowMs;
    if (Math.abs(ms) < 1000) return "just now";
    return ms < 0 ? AdminTime.duration(-ms) + " ago" : "in " + AdminTime.duration(ms);
  },
  // A <time> showing `us` relative, its UTC time on hover; `AdminTime.update` redraws
  // every such element of a page as time passes.
  element(us, nowMs = Date.now()) {
    const made = document.createElement("time");
    made.dataset.us = String(us);
    made.dateTime = new Date(us / 1000).toISOString();
    made.title = AdminTime.utc(us);
    made.textContent = AdminTime.relative(us, nowMs);
    return made;
  },
  update(root = document) {
    const nowMs = Date.now();
    for (const shown of root.querySelectorAll("time[data-us]")) {
      const text = AdminTime.relative(Number(shown.dataset.us), nowMs);
      if (shown.textContent !== text) shown.textContent = text;
    }
  },
});

// As extproc/inert.py's UNSAFE (tests/e2e/test_approvals_page.py compares the two): controls,
// bidi controls, zero-width and other invisible characters, separators, lone surrogates.
const UNSAFE = new RegExp([
  "[\\x00-\\x1f\\x7f-\\x9f\\xad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2",
  "\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ud800-\\udfff",
  "\\ufeff\\ufff9-\\ufffb\\u{110bd}\\u{110cd}\\u{13430}-\\u{1343f}\\u{1bca0}-\\u{1bca3}",
  "\\u{1d173}-\\u{1d17a}\\u{e0001}\\u{e0020}-\\u{e007f}]"].join(""), "gu");
const SHORT = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

// What is there, shown: a bidi override reverses no text, an invisible character is seen.
function visible(text) {
  return String(text).replace(UNSAFE, (char) => {
    if (char in SHORT) return SHORT[char];
    const code = char.codePointAt(0);
    const hex = code.toString(16);
    if (code < 0x100) return "\\x" + hex.padStart(2, "0");
    return code < 0x10000 ? "\\u" + hex.padStart(4, "0") : "\\U" + hex.padStart(8, "0");
  });
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = visible(text === null || text === undefined ? "" : text);
  if (className) td.className = className;
  return td;
}


// An element with its class and its text, agents' text made visible (none for null).
function made(name, className, text) {
  const element = document.createElement(name);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = visible(text);
  return element;
}

function link(text, href, className) {
  const a = made("a", className, text);
  a.href = href;
  return a;
}
