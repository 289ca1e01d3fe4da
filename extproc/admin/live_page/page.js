// The live sessions page: the sessions open now on every replica and the identities
// locked, read from the live sessions API every few seconds. A moderator (the API says so:
// `moderator`) gets an End button per session, which asks why and whether to lock the
// identity too, and Lock and Unlock for identities; a viewer sees the lists only. The
// navigation, signing in and the API call (with the CSRF header) are admin_page.js's.
"use strict";

const REFRESH_MS = 3000;
const live = document.getElementById("live");
const endForm = document.getElementById("end-form");
const lockForm = document.getElementById("lock-form");
let ending = null;  // the session the End form is for
let timer = null;

function moderating(may) {
  for (const shown of document.querySelectorAll(".moderate")) shown.hidden = !may;
}

function drawSessions(sessions, may) {
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren();
  document.getElementById("sessions-said").hidden = sessions.length > 0;
  document.getElementById("sessions").hidden = sessions.length === 0;
  for (const session of sessions) {
    const row = body.insertRow();
    row.dataset.session = session.session_id;
    cell(row, session.session_id, "id");
    cell(row, session.front);
    cell(row, session.identity);
    cell(row, session.target || "-");
    cell(row, session.replica);
    row.insertCell().append(AdminTime.element(session.started_us));
    row.insertCell().append(AdminTime.element(session.active_us));
    cell(row, session.exchanges, "num");
    cell(row, session.refusals, "num");
    cell(row, session.holds, "num");
    const act = row.insertCell();
    act.className = "moderate";
    act.hidden = !may;
    if (session.end_us) {
      act.append(made("span", "ending", "ending (" + session.end_by + ": "
                      + session.end_reason + ")"));
    } else {
      const button = made("button", "danger", "End");
      button.type = "button";
      button.setAttribute("aria-label", "End session " + visible(session.session_id)
                          + " of " + visible(session.identity));
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
    cell(row, lock.identity);
    if (lock.until_us === null) cell(row, "until unlocked");
    else row.insertCell().append(AdminTime.element(lock.until_us));
    cell(row, lock.locked_by);
    cell(row, lock.reason);
    const act = row.insertCell();
    act.className = "moderate";
    act.hidden = !may;
    const button = made("button", null, "Unlock");
    button.type = "button";
    button.setAttribute("aria-label", "Unlock " + visible(lock.identity));
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
    drawSessions(listed.sessions, may);
    drawLocks(locked.locks, may);
    moderating(may);
    if (!may) endForm.hidden = true;
    live.hidden = false;
  } catch (error) {
    say(String(error.message), true);
    return;
  }
  clearTimeout(timer);
  timer = setTimeout(show, REFRESH_MS);
}

function askEnd(session) {
  ending = session;
  document.getElementById("end-what").textContent = visible(
    "End session " + session.session_id + " (" + session.front + " of " + session.identity
    + (session.target ? " on " + session.target : "") + ")");
  endForm.hidden = false;
  document.getElementById("end-reason").focus();
}

endForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (ending === null) return;
  const body = { reason: document.getElementById("end-reason").value };
  const lock = document.getElementById("end-lock").value;
  if (lock) body.lock_seconds = Number(lock);
  try {
    const done = await call("/sessions/live/" + encodeURIComponent(ending.session_id)
                            + "/end", "POST", body);
    say(done.effect + (done.lock ? "; " + done.lock.message : ""), false);
    endForm.reset();
    endForm.hidden = true;
    ending = null;
  } catch (error) {
    say(String(error.message), true);
  }
  show();
});

document.getElementById("end-cancel").addEventListener("click", () => {
  endForm.reset();
  endForm.hidden = true;
  ending = null;
});

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

signIn(show, () => { live.hidden = true; clearTimeout(timer); });
setInterval(() => AdminTime.update(), 1000);
show();
