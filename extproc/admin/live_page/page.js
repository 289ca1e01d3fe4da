// The live sessions page: the sessions open now on every replica and the identities
// locked, read from the live sessions API every few seconds. Each session has a Watch link
// to its live view (the recordings page's `#live=ID`). A moderator (the API says so:
// `moderator`) also gets an End button per session, which asks why and how long to lock
// its identity out (15 minutes unless they choose otherwise, "no lock" said as such), and
// Lock and Unlock for identities; a viewer sees the lists and watches. The navigation,
// signing in and the API call (with the CSRF header) are admin_page.js's.
"use strict";

const REFRESH_MS = 3000;
const live = document.getElementById("live");
const endForm = document.getElementById("end-form");
const endLock = document.getElementById("end-lock");
const lockForm = document.getElementById("lock-form");
let ending = null;  // the session the End form is for
let listedNow = [];  // the sessions last listed
let timer = null;
// Whether the status line still says something the last listing made stale: the sign-in
// prompt, or a failure to list.
let statusStale = true;

function moderating(may) {
  for (const shown of document.querySelectorAll(".moderate")) shown.hidden = !may;
}

// A cell with its column's label, which a phone's card shows before the value.
function labelled(row, label, text, className) {
  const td = cell(row, text, className);
  td.dataset.label = label;
  return td;
}

// The live view of a session: the recordings page's watch mode.
function watchHref(sessionId) {
  return "/recordings/ui#" + new URLSearchParams({ live: sessionId }).toString();
}

// Each row is drawn again at every refresh: the control that had the focus gets it back.
function keepingFocus(draw) {
  const key = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.focus : undefined;
  draw();
  if (!key) return;
  for (const control of document.querySelectorAll("[data-focus]")) {
    if (control.dataset.focus === key) {
      control.focus();
      return;
    }
  }
}

function drawSessions(sessions, may) {
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren();
  document.getElementById("sessions-said").hidden = sessions.length > 0;
  document.getElementById("sessions").hidden = sessions.length === 0;
  for (const session of sessions) {
    const row = body.insertRow();
    row.dataset.session = session.session_id;
    labelled(row, "Session", session.session_id, "id");
    labelled(row, "Front", session.front);
    labelled(row, "Identity", session.identity);
    labelled(row, "Target", session.target || "-");
    labelled(row, "Replica", session.replica);
    labelled(row, "Since", "").append(AdminTime.element(session.started_us));
    labelled(row, "Last", "").append(AdminTime.element(session.active_us));
    labelled(row, "Exchanges", session.exchanges, "num");
    labelled(row, "Refused", session.refusals, "num");
    labelled(row, "Waiting", session.holds, "num");
    const act = row.insertCell();
    act.className = "actions";
    const whose = visible(session.session_id) + " of " + visible(session.identity);
    const watch = link("Watch", watchHref(session.session_id));
    watch.setAttribute("aria-label", "Watch session " + whose + " live");
    watch.dataset.focus = "watch " + session.session_id;
    act.append(watch);
    if (!may) continue;
    if (session.end_us) {
      act.append(made("span", "ending", "ending (" + session.end_by + ": "
                      + session.end_reason + ")"));
    } else {
      const button = made("button", "danger", "End");
      button.type = "button";
      button.setAttribute("aria-label", "End session " + whose);
      button.dataset.focus = "end " + session.session_id;
      button.addEventListener("click", () => askEnd(session));
      act.append(button);
    }
  }
}

function drawLocks(locks, may) {
  const body = document.querySelector("#locks tbody");
  body.replaceChildren();
  document.getElementById("locks-said").hidden = locks.length > 0;
  document.getElementById("locks").hidden = locks.length === 0;
  for (const lock of locks) {
    const row = body.insertRow();
    labelled(row, "Identity", lock.identity);
    if (lock.until_us === null) labelled(row, "Until", "until unlocked");
    else labelled(row, "Until", "").append(AdminTime.element(lock.until_us));
    labelled(row, "By", lock.locked_by);
    labelled(row, "Why", lock.reason);
    const act = row.insertCell();
    act.className = "moderate actions";
    act.hidden = !may;
    const button = made("button", null, "Unlock");
    button.type = "button";
    button.setAttribute("aria-label", "Unlock " + visible(lock.identity));
    button.dataset.focus = "unlock " + lock.identity;
    button.addEventListener("click", () => unlock(lock.identity));
    act.append(button);
  }
}

async function show() {
  if (!hasCaller()) return;
  try {
    const [listed, locked] = await Promise.all([call("/sessions/live"),
                                               call("/sessions/locks")]);
    const may = Boolean(listed.moderator);
    listedNow = listed.sessions;
    keepingFocus(() => {
      drawSessions(listed.sessions, may);
      drawLocks(locked.locks, may);
    });
    moderating(may);
    if (!may) endForm.hidden = true;
    if (ending) explainEnd();
    live.hidden = false;
    if (statusStale) {
      say("Signed in. The lists refresh every " + REFRESH_MS / 1000 + " s.", false);
      statusStale = false;
    }
  } catch (error) {
    say(String(error.message), true);
    statusStale = true;
    return;
  }
  clearTimeout(timer);
  timer = setTimeout(show, REFRESH_MS);
}

// A moment as this browser's clock shows it, to the minute: "09:15".
function clockTime(us) {
  const at = new Date(us / 1000);
  return String(at.getHours()).padStart(2, "0") + ":" + String(at.getMinutes()).padStart(2, "0");
}

function lockedOut(identity, untilUs) {
  return visible(identity) + " is locked out " + (untilUs === null ? "until unlocked"
    : "until " + clockTime(untilUs) + " (" + AdminTime.relative(untilUs) + ")");
}

// What ending the session will do, as the lock chosen says: whether its client may come back.
function explainEnd() {
  const means = document.getElementById("end-means");
  const seconds = Number(endLock.value);
  const others = listedNow.filter((s) => s.identity === ending.identity
                                  && s.session_id !== ending.session_id).length;
  if (seconds === 0) {
    means.textContent = "No lock: its client may reconnect at once, as "
      + visible(ending.identity) + ", and go on.";
    means.className = "unlocked";
    return;
  }
  means.textContent = "Ending it locks " + visible(ending.identity) + " out of every front for "
    + AdminTime.duration(seconds * 1000) + ", until "
    + clockTime((Date.now() + seconds * 1000) * 1000) + ": its client cannot reconnect"
    + (others ? ", and its " + others + " other open session" + (others > 1 ? "s end" : " ends")
      + " too." : " until then.");
  means.className = "";
}

function askEnd(session) {
  ending = session;
  document.getElementById("end-what").replaceChildren(
    "End session ", made("span", "id", session.session_id), visible(
      " (" + session.front + " of " + session.identity
      + (session.target ? " on " + session.target : "") + ")"));
  explainEnd();
  endForm.hidden = false;
  document.getElementById("end-reason").focus();
}

function closeEnd() {
  endForm.reset();
  endForm.hidden = true;
  ending = null;
}

endLock.addEventListener("change", () => { if (ending) explainEnd(); });

endForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (ending === null) return;
  const session = ending;
  const body = { reason: document.getElementById("end-reason").value,
                 lock_seconds: Number(endLock.value) };
  try {
    const done = await call("/sessions/live/" + encodeURIComponent(session.session_id)
                            + "/end", "POST", body);
    // Kept while the store is out: the answer's own words say what is done and when.
    say(done.kept ? done.effect + "."
      : (done.ended ? "Session " + visible(session.session_id) + " ended"
        : visible(session.replica) + ", which holds session " + visible(session.session_id)
          + ", is asked to end it (it has not yet)")
        + "; " + (done.lock ? lockedOut(done.lock.identity, done.lock.until_us)
          : "not locked: its client may reconnect at once") + ".", false);
    closeEnd();
    document.getElementById("sessions-title").focus();
  } catch (error) {
    say(String(error.message), true);
  }
  show();
});

document.getElementById("end-cancel").addEventListener("click", closeEnd);

lockForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { identity: document.getElementById("lock-identity").value.trim(),
                 reason: document.getElementById("lock-reason").value };
  const seconds = document.getElementById("lock-for").value;
  if (seconds) body.seconds = Number(seconds);
  try {
    say((await call("/sessions/locks", "POST", body)).effect, false);
    lockForm.reset();
  } catch (error) {
    say(String(error.message), true);
  }
  show();
});

async function unlock(identity) {
  try {
    say((await call("/sessions/locks/" + encodeURIComponent(identity) + "/unlock", "POST",
                    {})).effect, false);
  } catch (error) {
    say(String(error.message), true);
  }
  show();
}

signIn(show, () => { live.hidden = true; clearTimeout(timer); statusStale = true; });
setInterval(() => AdminTime.update(), 1000);
show();
