// What the admin pages (home, approvals, monitor, recordings, sessions) share: signing in, the
// navigation between them, the API call, and agents' text made visible. Everything these pages
// show comes from what agents did, so it is set as text, never as markup, with its control and
// invisible characters shown as escapes (`visible`). Served at /ui/common.js, before each
// page's own script.
"use strict";

// The token the viewer pasted, kept for this tab only; one sign-in for every page.
const KEY = "tollgate.approver-token";
// How this page's viewers sign in, as the server says on the root element: "token" (pasted)
// or "oidc" (at the identity provider; data-session="cookie" when this page came signed in).
const SIGN_IN = document.documentElement.dataset.signin || "token";
let cookieSession = document.documentElement.dataset.session === "cookie";
// Sent with every call: a request riding on the session cookie needs it (the CSRF check).
const CSRF = { "x-requested-by": "tollgate" };
const PAGES = [["Home", "/"], ["Approvals", "/approvals/ui"], ["Monitor", "/monitor/ui"],
               ["Recordings", "/recordings/ui"], ["Sessions", "/sessions/ui"]];

// Whether the page may call the API: a token pasted in this tab, or a session.
function hasCaller() {
  return cookieSession || Boolean(sessionStorage.getItem(KEY));
}

// Off to the identity provider, back to this very place (its fragment too) once signed in.
function providerSignIn() {
  location.assign("/auth/login?next=" + encodeURIComponent(
    location.pathname + location.search + location.hash));
}

// The page's sign-in form (#login, its #token field) and its #forget button: `show` reads
// and draws with the token just given (and at load, when the tab has one); `clear` takes
// down what was shown once it is forgotten.
function signIn(show, clear) {
  const tokenInput = document.getElementById("token");
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, tokenInput.value.trim());
    tokenInput.value = "";
    showWho();
    show();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    clear();
    showWho();
    say("Token forgotten.", false);
  });
}

// -- the navigation every page has, and who is signed in ----------------------------------

const NAV_STYLE = `
  nav.site { display: flex; flex-wrap: wrap; align-items: center; gap: .3rem .4rem;
             margin: 0 0 1rem; padding: 0 0 .5rem; border-bottom: 1px solid #c7c7cc; }
  nav.site a { display: inline-block; padding: .4rem .7rem; border: 1px solid #c7c7cc;
               border-radius: 6px; text-decoration: none; color: #0645ad; }
  nav.site a[aria-current="page"] { background: #1d1d1f; color: #fff; border-color: #1d1d1f; }
  nav.site .who { margin-left: auto; color: #1d1d1f; overflow-wrap: anywhere; }
  nav.site button { font: inherit; padding: .35rem .8rem; border: 1px solid #6e6e73;
                    border-radius: 6px; background: #f5f5f7; color: #1d1d1f; cursor: pointer; }
  nav.site a:focus-visible, nav.site button:focus-visible {
    outline: 3px solid #0b57d0; outline-offset: 2px; }
  html[data-session="cookie"] #login, html[data-session="cookie"] header #session {
    display: none !important; }
  /* A phone: the pages in one row, who is signed in and sign out in a second, compact,
     so the page's own content (an approval's buttons) stays in the first screen. */
  @media (max-width: 700px) {
    nav.site { gap: .25rem; margin-bottom: .5rem; padding-bottom: .35rem; font-size: .9rem; }
    nav.site a { padding: .3rem .45rem; }
    nav.site button { padding: .2rem .6rem; }
    nav.site .who { margin-left: 0; flex: 1 1 12rem; }
  }`;

const nav = document.createElement("nav");
const whoShown = document.createElement("span");
const signOutButton = document.createElement("button");

function drawNav() {
  const style = document.createElement("style");
  style.textContent = NAV_STYLE;
  document.head.append(style);
  nav.className = "site";
  nav.setAttribute("aria-label", "Tollgate pages");
  for (const [name, href] of PAGES) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = name;
    if (location.pathname === href) a.setAttribute("aria-current", "page");
    nav.append(a);
  }
  whoShown.className = "who";
  whoShown.id = "signed-in-as";
  signOutButton.type = "button";
  signOutButton.id = "sign-out";
  signOutButton.textContent = "Sign out";
  signOutButton.hidden = true;
  signOutButton.addEventListener("click", signOut);
  nav.append(whoShown, signOutButton);
  document.body.prepend(nav);
}

// The nav's "Signed in as": asked of the server, which knows the token's or session's owner.
async function showWho() {
  if (!hasCaller()) {
    whoShown.replaceChildren("Not signed in");
    if (SIGN_IN === "oidc") {
      const again = document.createElement("a");
      again.href = "/auth/login?next=" + encodeURIComponent(location.pathname);
      again.textContent = "Sign in";
      again.id = "sign-in";
      whoShown.append(" · ", again);
    }
    signOutButton.hidden = true;
    return;
  }
  try {
    const me = await call("/ui/me");
    whoShown.textContent = "Signed in as " + visible(me.email ? me.sub + " (" + me.email + ")"
                                                     : me.sub);
    signOutButton.hidden = false;
  } catch (error) {
    whoShown.textContent = "Not signed in (" + visible(error.message) + ")";
    signOutButton.hidden = true;
  }
}

// Out of the session (the server clears its cookie) and of this tab's token alike.
async function signOut() {
  sessionStorage.removeItem(KEY);
  if (cookieSession) {
    await fetch("/auth/logout", { method: "POST", headers: CSRF });
    cookieSession = false;
  }
  location.assign(SIGN_IN === "oidc" ? "/?signed-out" : location.pathname);
}

function say(text, isError) {
  const statusLine = document.getElementById("status");
  statusLine.textContent = visible(text);
  statusLine.className = isError ? "error" : "";
}

// What every request to the admin API carries: the tab's token, else nothing of its own
// (the session's cookie goes by itself), and the pages' CSRF mark.
function apiHeaders() {
  const token = sessionStorage.getItem(KEY);
  const headers = { ...CSRF };
  if (token || !cookieSession) headers["authorization"] = "Bearer " + token;
  return headers;
}

// The admin API with the viewer's token, or their session; a refusal becomes an Error with
// its code. A session that ended (401 without a token) signs in at the provider again.
async function call(path, method = "GET", body = undefined) {
  const token = sessionStorage.getItem(KEY);
  const headers = apiHeaders();
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
    if (reply.status === 401 && !token && cookieSession) {
      cookieSession = false;
      providerSignIn();
    }
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

// Text, each trace it names ("trace 4bf9...": a flow hold's reasons name so the answers
// the agent read before it) a link to that exchange in the record; the rest made visible.
const NAMED_TRACE = /\btrace ([0-9a-f]{32})\b/g;

function traceLinked(text) {
  const parts = [];
  let from = 0;
  for (const found of text.matchAll(NAMED_TRACE)) {
    parts.push(visible(text.slice(from, found.index) + "trace "),
               link(found[1], "/recordings/ui#record=" + found[1], "named-trace"));
    from = found.index + found[0].length;
  }
  parts.push(visible(text.slice(from)));
  return parts;
}

drawNav();
// Signed in at the provider, or sent there: a page opened without a session (and no token in
// the tab) goes to sign in, unless it asks for the token form (?token) or was just left.
if (SIGN_IN === "oidc" && !hasCaller() && !/[?&](token|signed-out)\b/.test(location.search)) {
  providerSignIn();
} else {
  showWho();
}
