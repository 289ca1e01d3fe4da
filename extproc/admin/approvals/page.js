// The approvals page: what waits for the approver (#pending), what was decided (#history),
// and each approval in a view of its own (#<id>, the link the webhook and `tollgate
// approvals show` give): what the agent asks, why it is held, what approving grants, how
// long the agent has waited and will still wait, the requester's other requests and
// recent activity, links to the trace and the record. Approve and Deny (offered only to
// those who may decide: never to the requester) ask for confirmation first. It calls the
// API with the approver's own token (kept for this tab only); a token that stops working
// asks for a new one and leaves what is shown in place. Everything shown comes from
// requests agents made, so it is set as text, never as markup, and its control and
// invisible characters are shown as escapes (`visible`).
"use strict";

const REFRESH_MS = 5000;
const views = {
  pending: document.getElementById("pending-view"),
  history: document.getElementById("history-view"),
  detail: document.getElementById("detail"),
};
const pendingRows = document.querySelector("#approvals tbody");
const historyRows = document.querySelector("#history tbody");
const loginForm = document.getElementById("login");
const sessionBar = document.getElementById("session");
const signInAgain = document.getElementById("signin-again");
const dialog = document.getElementById("confirm");
const confirmForm = document.getElementById("confirm-form");
const confirmReason = document.getElementById("confirm-reason");
const confirmError = document.getElementById("confirm-error");
const confirmYes = document.getElementById("confirm-yes");
const confirmLength = document.getElementById("confirm-length");
const confirmMinutes = document.getElementById("confirm-minutes");
// The lengths an approver may choose for a window grant, up to the policy's own.
const WINDOW_CHOICES = [5, 15, 30, 60, 120, 240, 480, 1440];
// The requester's activity on the target: how much of the day is summed up, how much shown.
const ACTIVITY_READ = 100;
const ACTIVITY_SHOWN = 10;
// How long, and how often, the page looks for what an approved request then did.
const TELL_MS = 20000;
const TELL_EVERY_MS = 1000;

let generation = 0;     // the latest drawing asked for: an older answer arriving late is stale
let shownOnce = false;  // whether anything was drawn with a token (kept if it stops working)
let updatedUs = null;   // when what is shown was last read
let activityFor = null; // the approval whose requester's recent activity is shown
let deciding = null;    // {approval, verb, opener} while the confirmation is open
let switching = false;  // the form opened to give another token: it stays until used

// -- building blocks -------------------------------------------------------------------

function viewHref(id) {
  return "#" + encodeURIComponent(id);
}

// Text with some times in it: `parts` are strings, {us} (a time, shown relative to
// `nowMs`, its UTC time on hover), {ms} (a duration) and {ms, us} (a duration ending at
// `us`, whose UTC time is on hover).
function sentence(className, parts, nowMs = Date.now()) {
  const p = made("p", className);
  for (const part of parts) {
    if (typeof part === "string") {
      p.append(part);
    } else if (part.ms === undefined) {
      p.append(AdminTime.element(part.us, nowMs));
    } else if (part.us === undefined) {
      p.append(AdminTime.duration(part.ms));
    } else {
      const until = made("time", null, AdminTime.duration(part.ms));
      until.dateTime = new Date(part.us / 1000).toISOString();
      until.title = AdminTime.utc(part.us);
      p.append(until);
    }
  }
  return p;
}

function labelledCell(row, label, className) {
  const td = row.insertCell();
  td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

function grantText(approval) {
  return approval.grant_mode === "window"
    ? "a window of " + approval.grant_minutes + " min from the approval: every request of "
      + approval.requester + " on " + approval.target + " that "
      + approval.approvers.join(", ") + " would decide passes"
    : "this request, once";
}

// Two-person approval and beyond: how many must approve, and who has so far.
function quorumText(approval) {
  const needed = approval.approvals_needed || 1;
  if (needed === 1) return null;
  const by = approval.approved_by || [];
  return needed + " different approvers must approve it; "
    + (by.length ? "approved so far by " + by.join(", ") : "nobody has yet") + ".";
}

function whyHeld(approval) {
  return approval.reasons.join("; ") || approval.rules.join(", ") || "held by policy";
}

// A decided approval in words: who decided, and whether a request has used it (what
// that request then did is the wait's sentence, from its record).
function decidedText(approval) {
  const by = (approval.approved_by || []).length ? approval.approved_by.join(", ")
    : approval.decided_by;
  if (approval.status === "used") {
    return "Approved by " + by + "; a request of it was let through.";
  }
  if (approval.status === "approved") {
    return "Approved by " + by + (approval.grant_mode === "window"
      ? "; its window lets the requester's held requests through."
      : "; no request has used it yet.");
  }
  if (approval.status === "denied") return "Denied by " + approval.decided_by + ".";
  if (approval.status === "expired") return "Expired undecided.";
  return "Decided: " + approval.status + ".";
}

function stateBadge(approval) {
  return made("span", "state state-" + approval.status, approval.status);
}

// -- how long the agent waits, and what approving now does ------------------------------

function waitParts(approval, nowMs) {
  const wait = approval.wait || {};
  const since = wait.since_us || approval.created_us;
  const answered = wait.answered;
  if (approval.status !== "pending") {
    if (!answered) return null;
    return ["Its request was answered ", { us: answered.at_us }, " (the approval "
            + answered.approval_status + " then): " + answered.said + "."];
  }
  const window = approval.grant_mode === "window";
  const opens = " opens a " + approval.grant_minutes + "-minute window from now for "
    + approval.requester + " on " + approval.target + ".";
  const later = ["Approving now lets the agent's next try of exactly this request through, "
                 + "once, until this approval expires ", { us: approval.expires_us },
                 window ? "; it also" + opens : "."];
  const gaveUp = answered && answered.approval_status === "pending";
  if (gaveUp && answered.client_left) {
    return ["The agent left ", { us: answered.at_us }, " after ",
            { ms: (answered.at_us - since) / 1000 }, ": its client went away while it "
            + "waited, and nothing waits on it now. ", ...later];
  }
  if (gaveUp) {
    return ["The agent gave up waiting ", { us: answered.at_us }, " after ",
            { ms: (answered.at_us - since) / 1000 }, ": its request was refused ("
            + answered.status + (answered.refusal ? " " + answered.refusal : "") + "). ",
            ...later];
  }
  if (wait.until_us && nowMs * 1000 >= wait.until_us) {
    return ["The agent's wait ended ", { us: wait.until_us }, " after ",
            { ms: (wait.until_us - since) / 1000 }, ". ", ...later];
  }
  if (wait.until_us && wait.waiting === false) {
    return ["No request waits on it now: its client left, or " + wait.held_by
            + ", which held it, stopped (asked ", { us: since }, "). ", ...later];
  }
  const waited = ["The agent has waited ", { ms: nowMs - since / 1000 }];
  const now = window ? "Approving now lets the waiting request through at once and" + opens
    : "Approving now lets the waiting request through at once.";
  if (wait.until_us) {
    return [...waited, " and waits at most ",
            { ms: wait.until_us / 1000 - nowMs, us: wait.until_us }, " more. ", now];
  }
  return ["It was asked ", { us: since }, ". No request is known to wait on it: approving "
          + "lets the next try of exactly this request through, once."];
}

// -- signing in, and signing in again -----------------------------------------------------

function signedIn(caller) {
  if (caller) document.getElementById("who").textContent = visible(caller.sub);
  signInAgain.hidden = true;
  if (switching) return;
  loginForm.hidden = true;
  sessionBar.hidden = false;
}

function signedOut() {
  loginForm.hidden = false;
  sessionBar.hidden = true;
}

// The token stopped working (expired, or not trusted): ask for a new one, and keep what
// is shown, saying how old it is.
function needSignIn(error) {
  signedOut();
  const asOf = shownOnce && updatedUs
    ? " What is shown below is as of " + AdminTime.utc(updatedUs) + "." : "";
  const text = visible(
    (shownOnce ? "Your token is no longer accepted: sign in again. "
      : "That token is not accepted: sign in with your own. ") + error.message + "." + asOf);
  // Said once: each refresh with the same token would say it again.
  if (signInAgain.textContent !== text || signInAgain.hidden) {
    signInAgain.textContent = text;
    signInAgain.hidden = false;
  }
  say("Sign in to go on.", true);
}

// -- the views -------------------------------------------------------------------------

function route() {
  let hash = location.hash.slice(1);
  try {
    hash = decodeURIComponent(hash);
  } catch (error) {
    // a malformed escape: taken as written
  }
  if (hash === "" || hash === "pending") return { view: "pending" };
  if (hash === "history") return { view: "history" };
  return { view: "detail", id: hash };
}

function showView(name) {
  for (const [key, section] of Object.entries(views)) section.hidden = key !== name;
  for (const tab of ["pending", "history"]) {
    const link = document.getElementById("tab-" + tab);
    if (tab === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function decideControls(approval, me) {
  if (!approval.may_decide) {
    const who = approval.approvers.join(", ") || "nobody";
    const more = (approval.approvals_needed || 1) - (approval.approved_by || []).length;
    return [made("span", "note", approval.requester === me
      ? "Your own request: " + who + " decide it."
      : (approval.approved_by || []).includes(me)
        ? "You approved it: it waits for " + more + " more approver" + (more > 1 ? "s" : "")
          + " of " + who + "."
        : "Decided by " + who + ".")];
  }
  return ["approve", "deny"].map((verb) => {
    const button = made("button", verb, verb === "approve" ? "Approve" : "Deny");
    button.type = "button";
    button.setAttribute("aria-label", (verb === "approve" ? "Approve " : "Deny ") + approval.id);
    button.addEventListener("click", () => openConfirm(approval, verb, button));
    return button;
  });
}

// A row of either tab, begun with what both show: what, who asks, on which target.
function approvalRow(approval) {
  const row = document.createElement("tr");
  row.dataset.id = approval.id;
  const what = labelledCell(row, "What", "summary");
  what.append(link(approval.summary, viewHref(approval.id)), made("span", "id", approval.id));
  labelledCell(row, "Who asks").textContent = visible(approval.requester);
  labelledCell(row, "Target").textContent = visible(approval.target);
  return row;
}

function pendingRow(approval, me) {
  const row = approvalRow(approval);
  row.dataset.waiting = String(approval.waiting);
  labelledCell(row, "Why held").textContent = visible(whyHeld(approval));
  const grants = labelledCell(row, "Approving grants");
  grants.textContent = visible(grantText(approval));
  if (quorumText(approval)) grants.append(made("span", "quorum", quorumText(approval)));
  labelledCell(row, "Asked").append(AdminTime.element(approval.created_us));
  labelledCell(row, "Expires").append(AdminTime.element(approval.expires_us));
  labelledCell(row, "Agent").append(approval.waiting
    ? made("span", "agent-waiting", "waiting now")
    : made("span", "agent-gone", "not waiting: a retry would pass"));
  labelledCell(row, "Decide", "actions").append(...decideControls(approval, me));
  return row;
}

// -- live holds: the tab's title counts them, and the approver may be notified ---------

const TITLE = document.title;
let liveSeen = null;  // ids of the live holds last listed (null: none listed yet)

function tellLiveHolds(approvals) {
  const live = approvals.filter((a) => a.waiting);
  document.title = (live.length ? "(" + live.length + " waiting) " : "") + TITLE;
  const fresh = liveSeen === null ? [] : live.filter((a) => !liveSeen.has(a.id));
  liveSeen = new Set(live.map((a) => a.id));
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  for (const approval of fresh) {
    new Notification("An agent waits for your approval", {
      body: approval.requester + " on " + approval.target + ": " + approval.summary,
      tag: approval.id,
    });
  }
}

function offerNotifications() {
  const button = document.getElementById("notify");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}

// Rows already shown stay as they are (focus stays on a button across the periodic
// listing); rows no longer listed go, new ones are added in order.
function drawRows(rows, approvals, build, columns, emptyText) {
  const shown = new Map(Array.from(rows.querySelectorAll("tr[data-id]"),
                                   (row) => [row.dataset.id, row]));
  const listed = new Set(approvals.map((approval) => approval.id));
  for (const row of Array.from(rows.rows)) {
    if (!listed.has(row.dataset.id)) row.remove();
  }
  let next = rows.firstElementChild;
  for (const approval of approvals) {
    const row = shown.get(approval.id);
    if (row !== undefined && row === next) {
      next = row.nextElementSibling;
    } else {
      rows.insertBefore(row || build(approval), next);
    }
  }
  if (approvals.length === 0) {
    const empty = rows.insertRow();
    const td = cell(empty, emptyText, "empty");
    td.colSpan = columns;
  }
  AdminTime.update(rows);
}

async function showPending(current) {
  const answer = await call("/approvals?status=pending");
  if (!current()) return;
  const me = answer.caller && answer.caller.sub;
  signedIn(answer.caller);
  showView("pending");
  // Holds an agent waits on first: a request nobody waits for any more can wait too.
  const approvals = [...answer.approvals.filter((a) => a.waiting),
                     ...answer.approvals.filter((a) => !a.waiting)];
  // A row whose agent stopped waiting (or came back) is drawn again.
  for (const row of Array.from(pendingRows.querySelectorAll("tr[data-id]"))) {
    const now = approvals.find((a) => a.id === row.dataset.id);
    if (now && row.dataset.waiting !== String(now.waiting)) row.remove();
  }
  drawRows(pendingRows, approvals, (a) => pendingRow(a, me), 9, "Nothing waits for you.");
  tellLiveHolds(approvals);
  const live = approvals.filter((a) => a.waiting).length;
  say(approvals.length + " pending, " + live + " with an agent waiting. Updated "
      + AdminTime.utc(Date.now() * 1000).slice(11) + ".", false);
}

function historyRow(approval) {
  const row = approvalRow(approval);
  labelledCell(row, "Outcome").append(stateBadge(approval));
  labelledCell(row, "Decided by").textContent = visible(approval.decided_by || "nobody");
  const at = approval.decided_us || approval.expires_us;
  labelledCell(row, "When").append(AdminTime.element(at));
  labelledCell(row, "Reason").textContent = visible(approval.reason || "");
  return row;
}

async function showHistory(current) {
  const answer = await call("/approvals?status=decided&limit=100");
  if (!current()) return;
  signedIn(answer.caller);
  showView("history");
  // A decided approval can still change (approved, then used): changed rows are redrawn.
  for (const row of Array.from(historyRows.querySelectorAll("tr[data-id]"))) {
    const now = answer.approvals.find((a) => a.id === row.dataset.id);
    if (now && row.dataset.state !== now.status) row.remove();
  }
  drawRows(historyRows, answer.approvals, (a) => {
    const row = historyRow(a);
    row.dataset.state = a.status;
    return row;
  }, 7, "Nothing decided yet that you may see.");
  say(answer.approvals.length + " decided. Updated " + AdminTime.utc(Date.now() * 1000).slice(11)
      + ".", false);
}

// -- one approval ----------------------------------------------------------------------

function fact(list, term, ...content) {
  list.append(made("dt", null, term));
  const dd = made("dd");
  dd.append(...content.map((c) => (typeof c === "string" ? visible(c) : c)));
  list.append(dd);
  return dd;
}

function requestText(request) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query || {})) {
    for (const each of Array.isArray(value) ? value : [value]) query.append(name, String(each));
  }
  const search = query.toString();
  const line = request.method + " " + request.path + (search ? "?" + search : "");
  const body = request.body === null || request.body === undefined ? ""
    : "\n\n" + (typeof request.body === "string" ? request.body
      : JSON.stringify(request.body, null, 2));
  // Line by line: its newlines stay, every other control character is escaped.
  return (line + body).split("\n").map(visible).join("\n");
}

function relatedList(id, approvals, emptyText) {
  const list = made("ul", "related");
  list.id = id;
  if (approvals.length === 0) list.append(made("li", "empty", emptyText));
  for (const approval of approvals) {
    const item = made("li");
    item.append(link(approval.summary, viewHref(approval.id), "summary"), " ",
                stateBadge(approval), " ",
                AdminTime.element(approval.decided_us || approval.created_us));
    list.append(item);
  }
  return list;
}

function drawDetail(approval, others, recent, me) {
  const detail = views.detail;
  const focused = detail.contains(document.activeElement) ? document.activeElement.id : null;
  detail.replaceChildren();
  detail.append(link("← All waiting requests", "#pending", "back"));
  const title = made("h2");
  title.id = "detail-title";
  title.tabIndex = -1;
  title.append("Approval " + approval.id + " ", stateBadge(approval));
  detail.append(title);

  detail.append(made("p", "label", approval.requester + " asks, on " + approval.target + ":"));
  const what = made("p", "what", approval.summary);
  what.id = "detail-what";
  detail.append(what);

  const actions = made("div", "actions");
  actions.id = "detail-actions";
  if (approval.status === "pending") actions.append(...decideControls(approval, me));
  else if (approval.status === "abandoned") {
    actions.append(made("span", "note", "Abandoned: " + approval.reason + "."));
  } else actions.append(made("span", "note", decidedText(approval)));
  detail.append(actions);

  const wait = made("div", "wait");
  wait.id = "detail-wait";
  detail.append(wait);

  const facts = made("dl", "facts");
  fact(facts, "Approving grants", grantText(approval)).id = "detail-grant";
  const reasons = made("ul");
  reasons.id = "detail-reasons";
  for (const reason of approval.reasons.length ? approval.reasons : ["(no reason given)"]) {
    const item = made("li");
    item.append(...traceLinked(reason));
    reasons.append(item);
  }
  fact(facts, "Why held", reasons);
  fact(facts, "Rules", approval.rules.join(", ") || "-").id = "detail-rules";
  fact(facts, "Who asks", approval.requester);
  fact(facts, "Target", approval.target);
  fact(facts, "Who may decide", approval.approvers.join(", ") || "nobody");
  if (quorumText(approval)) fact(facts, "Approvals", quorumText(approval)).id = "detail-quorum";
  fact(facts, "Asked", AdminTime.element(approval.created_us));
  // An expiry matters while it can still come: a pending approval's, and an approved
  // once grant's, usable until then; once decided otherwise, it is no fact any more.
  const expiry = { pending: "Expires", approved: "Usable until", expired: "Expired" }[
    approval.status];
  if (expiry && !(approval.status === "approved" && approval.grant_mode === "window")) {
    fact(facts, expiry, AdminTime.element(approval.expires_us)).id = "detail-expiry";
  }
  if (approval.decided_by) {
    fact(facts, "Decided", approval.status + " by " + approval.decided_by + " ",
         AdminTime.element(approval.decided_us),
         approval.reason ? ": " + approval.reason : "");
  }
  if (approval.status === "abandoned") {
    fact(facts, "Abandoned", AdminTime.element(approval.decided_us));
  }
  if (approval.used_us) fact(facts, "Used", AdminTime.element(approval.used_us));
  if (approval.grant_until_us) fact(facts, "Window until", AdminTime.element(approval.grant_until_us));
  const trace = approval.trace_url
    ? link(approval.trace_id, approval.trace_url) : made("code", null, approval.trace_id);
  trace.id = "detail-trace";
  fact(facts, "Trace", trace);
  const record = link("this request in the record",
                        "/recordings/ui#record=" + encodeURIComponent(approval.trace_id));
  record.id = "detail-record";
  fact(facts, "Record", record);
  detail.append(facts);

  detail.append(made("h3", null, "The request (masked)"));
  const request = made("pre");
  request.id = "detail-request";
  request.textContent = requestText(approval.request);
  detail.append(request);

  detail.append(made("h3", null, "Other requests of " + approval.requester + " waiting"));
  detail.append(relatedList("detail-others", others, "None that you may see."));
  detail.append(made("h3", null, approval.requester + "'s recent approvals"));
  detail.append(relatedList("detail-recent", recent, "None that you may see."));
  detail.append(made("h3", null, approval.requester + "'s recent activity"));
  const activity = made("div");
  activity.id = "detail-activity";
  activity.append(made("p", "note", "Reading the record…"));
  detail.append(activity);
  activityFor = null;
  drawWait(approval);
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function drawWait(approval) {
  const wait = document.getElementById("detail-wait");
  if (!wait) return;
  const nowMs = Date.now();
  const parts = waitParts(approval, nowMs);
  wait.replaceChildren(...(parts ? [sentence(null, parts, nowMs)] : []));
  wait.hidden = parts === null;
}

// The requester's recent records, read through the recordings API with the viewer's
// token: once per view (each read is itself recorded), for its readers only, marked as
// the page's own read (background=1: nobody asked for it, so a refusal of it is no
// person's attempt in the audit report).
async function drawActivity(approval) {
  if (activityFor === approval.id) return;
  activityFor = approval.id;
  const box = document.getElementById("detail-activity");
  if (!approval.reads_record && !approval.reads_requester) {
    // Asked anyway, the record would count a refused read.
    box.replaceChildren(made("p", "note", "Only the record's readers (recordings.readers) "
                             + "and this approval's approvers see what the requester did; "
                             + "you are neither."));
    return;
  }
  let found;
  try {
    // An approver who is no reader reads by the approval: its requester's, on its target.
    found = await call("/recordings/search?background=1&since=1d&limit=" + ACTIVITY_READ
                       + "&identity="
                       + encodeURIComponent(approval.requester) + "&target="
                       + encodeURIComponent(approval.target)
                       + (approval.reads_record ? ""
                         : "&approval=" + encodeURIComponent(approval.id)));
  } catch (error) {
    if (error.status === 401) {
      activityFor = null;
      throw error;
    }
    box.replaceChildren(made("p", "note", error.status === 403
      ? "Only the record's readers (recordings.readers) see what the requester did; "
        + "this token is not one of theirs (" + error.message + ")."
      : "The record could not be read (" + error.message + ")."));
    return;
  }
  if (!box.isConnected) return;
  const list = made("ul", "related");
  if (found.records.length === 0) {
    list.append(made("li", "empty", "Nothing on " + approval.target + " in the last day."));
  }
  // Summed up first: a refused `rm -rf *` before an innocent-looking line matters.
  const count = (action) => found.records.filter((r) => r.action === action).length;
  const summary = made("p", "activity-summary", (found.records.length >= ACTIVITY_READ ? "Its latest "
    + found.records.length : "All " + found.records.length) + " exchanges on "
    + approval.target + " in the last day: " + count("deny") + " refused, " + count("hold")
    + " held, " + count("allow") + " allowed. The latest:");
  summary.id = "detail-activity-summary";
  for (const record of found.records.slice(0, ACTIVITY_SHOWN)) {
    const item = made("li");
    const said = [record.kind, record.action, record.target || "", record.status || ""]
      .filter((part) => part !== "").join(" ");
    // The record's own page is its readers'; an approver who is none sees the line.
    item.append(AdminTime.element(record.started_us), " ", approval.reads_record
      ? link(said, "/recordings/ui#record=" + encodeURIComponent(record.id))
      : made("span", "record", said));
    if (record.what) item.append(" ", made("span", "summary", record.what));
    if (record.action === "deny") item.className = "refused";
    list.append(item);
  }
  box.replaceChildren(...(found.records.length ? [summary] : []), list);
}

async function showDetail(id, current, moved) {
  let approval;
  try {
    approval = await call("/approvals/" + encodeURIComponent(id));
  } catch (error) {
    if (error.status !== 404 || !current()) throw error;
    signInAgain.hidden = true;
    showView("detail");
    delete views.detail.dataset.key;
    const title = made("h2", null, "No approval " + id + " that you may see");
    title.id = "detail-title";
    title.tabIndex = -1;
    views.detail.replaceChildren(link("← All waiting requests", "#pending", "back"), title);
    if (moved) title.focus();
    say(error.message, true);
    return;
  }
  const mine = "requester=" + encodeURIComponent(approval.requester);
  const [others, recent] = await Promise.all([
    call("/approvals?status=pending&limit=20&" + mine),
    call("/approvals?status=decided&limit=10&" + mine),
  ]);
  if (!current()) return;
  const me = others.caller && others.caller.sub;
  signedIn(others.caller);
  showView("detail");
  const otherPending = others.approvals.filter((a) => a.id !== approval.id);
  const otherDecided = recent.approvals.filter((a) => a.id !== approval.id);
  const key = JSON.stringify([{ ...approval, wait: null }, otherPending, otherDecided, me]);
  if (views.detail.dataset.key !== key) {
    views.detail.dataset.key = key;
    drawDetail(approval, otherPending, otherDecided, me);
  } else {
    drawWait(approval);
    AdminTime.update(views.detail);
  }
  if (moved) document.getElementById("detail-title").focus();
  say(approval.id + " is " + approval.status + ". Updated "
      + AdminTime.utc(Date.now() * 1000).slice(11) + ".", false);
  await drawActivity(approval);
}

// -- drawing what the address names ----------------------------------------------------

async function refresh(moved = false) {
  if (!hasCaller()) return;
  const mine = ++generation;
  const current = () => mine === generation;
  const where = route();
  try {
    if (where.view === "pending") await showPending(current);
    else if (where.view === "history") await showHistory(current);
    else await showDetail(where.id, current, moved);
    if (!current()) return;
    shownOnce = true;
    updatedUs = Date.now() * 1000;
    if (moved && where.view !== "detail") views[where.view].querySelector("h2").focus();
  } catch (error) {
    if (!current()) return;
    if (error.status === 401) needSignIn(error);
    else say(String(error.message), true);
  }
}

window.addEventListener("hashchange", () => {
  delete views.detail.dataset.key;
  refresh(true);
});

// -- deciding, after a confirmation ------------------------------------------------------

function openConfirm(approval, verb, opener) {
  deciding = { approval, verb, opener };
  const approving = verb === "approve";
  document.getElementById("confirm-title").textContent =
    (approving ? "Approve " : "Deny ") + "this request of " + visible(approval.requester) + "?";
  document.getElementById("confirm-what").textContent = visible(approval.summary);
  offerLengths(approving && approval.grant_mode === "window" ? approval.grant_minutes : null);
  if (approving) {
    drawGrant(approval);
  } else {
    document.getElementById("confirm-grant").replaceChildren(
      "Denying refuses it: the agent is told your reason.");
  }
  document.getElementById("confirm-reason-label").textContent = approving
    ? "Reason (optional; kept in the audit record)" : "Reason (needed; the agent is told it)";
  confirmReason.value = "";
  confirmReason.removeAttribute("aria-invalid");
  confirmError.textContent = "";
  confirmYes.textContent = approving ? "Approve" : "Deny";
  confirmYes.className = verb;
  dialog.showModal();
  // The first thing to choose gets the focus: the window's length where there is one.
  (confirmLength.hidden ? confirmReason : confirmMinutes).focus();
}

// What approving grants, for the window's length as chosen now: the sentence follows
// the choice, so it never names a length other than the one approved.
function drawGrant(approval) {
  const chosen = confirmLength.hidden ? approval
    : { ...approval, grant_minutes: Number(confirmMinutes.value) };
  const grant = document.getElementById("confirm-grant");
  grant.replaceChildren("Approving grants " + visible(grantText(chosen)) + ".");
  const more = (approval.approvals_needed || 1) - (approval.approved_by || []).length;
  if (more > 1) {
    grant.append(" Yours is one of " + more + " approvals it still needs: it waits for "
                 + "the others.");
  }
  const parts = approval.wait && more <= 1 ? waitParts(chosen, Date.now()) : null;
  if (parts) grant.append(" ", ...sentence(null, parts).childNodes);
}

confirmMinutes.addEventListener("change", () => {
  if (deciding !== null && deciding.verb === "approve") drawGrant(deciding.approval);
});

// Tab and Shift+Tab go round the dialog's own controls: a modal dialog keeps the
// keyboard until it is closed (Escape or Cancel), as it keeps the pointer.
dialog.addEventListener("keydown", (event) => {
  if (event.key !== "Tab") return;
  const controls = Array.from(dialog.querySelectorAll("select, textarea, button"))
    .filter((control) => !control.disabled && control.offsetParent !== null);
  if (controls.length === 0) return;
  const first = controls[0];
  const last = controls[controls.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
});

// A window grant's length, chosen within the policy's (its own first, then shorter ones).
function offerLengths(bound) {
  confirmLength.hidden = bound === null;
  if (bound === null) return;
  const choices = [bound, ...WINDOW_CHOICES.filter((m) => m < bound).reverse()];
  confirmMinutes.replaceChildren(...choices.map((minutes) => {
    const option = made("option", null, minutes >= 60 && minutes % 60 === 0
      ? (minutes / 60) + " h" : minutes + " min");
    option.value = String(minutes);
    return option;
  }));
}

confirmForm.noValidate = true;
confirmForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (deciding === null) return;
  const { approval, verb } = deciding;
  const reason = confirmReason.value.trim();
  if (verb === "deny" && !reason) {
    confirmError.textContent = "A denial needs a reason: the agent is told it.";
    confirmReason.setAttribute("aria-invalid", "true");
    confirmReason.focus();
    return;
  }
  confirmYes.disabled = true;
  try {
    const body = reason ? { reason } : {};
    if (!confirmLength.hidden && Number(confirmMinutes.value) !== approval.grant_minutes) {
      body.grant_minutes = Number(confirmMinutes.value);
    }
    const answer = await call("/approvals/" + encodeURIComponent(approval.id) + "/" + verb,
                              "POST", body);
    // Redrawn first: closing then finds the decided row gone, and focuses the heading.
    await refresh();
    dialog.close();
    const decided = answer.id + " " + (answer.status === "pending" ? answer.effect
      : answer.status + " by " + answer.decided_by) + ".";
    say(decided, false);
    tell(decided, false);
    if (verb === "approve" && answer.status !== "pending") tellWhatItDid(answer.id, decided);
  } catch (error) {
    if (error.status === 401) {
      dialog.close();
      needSignIn(error);
    } else {
      confirmError.textContent = visible(error.message);
    }
  } finally {
    confirmYes.disabled = false;
  }
});

// The last decision made on this page, and what it led to: kept in view (the status line
// is redrawn with every refresh) until the next decision.
function tell(text, isError) {
  const line = document.getElementById("decided");
  line.textContent = visible(text);
  line.className = isError ? "error" : "";
  line.hidden = false;
}

// After approving, what the request then did, as its record says (the same words the
// CLI and Slack use): it ran, and what its target answered, or tollgate refused it after
// all. Looked for a while; a request nobody waits on any more is told of when retried.
async function tellWhatItDid(id, decided) {
  const until = Date.now() + TELL_MS;
  while (Date.now() < until) {
    await new Promise((done) => setTimeout(done, TELL_EVERY_MS));
    let approval;
    try {
      approval = await call("/approvals/" + encodeURIComponent(id));
    } catch (error) {
      return;
    }
    const answered = approval.wait && approval.wait.answered;
    if (answered && answered.approval_status !== "pending") {
      tell(decided + " Then " + answered.said + ".", Boolean(answered.refusal));
      return;
    }
    if (!approval.waiting && approval.status === "approved") return;
  }
}

document.getElementById("confirm-no").addEventListener("click", () => dialog.close());

// Closed (decided, cancelled, Escape): focus goes back where the decision was asked, or,
// its button gone with its row, to the view's heading. The event comes after the close,
// as a task of its own: a confirmation opened again meanwhile (Escape, then Enter at
// once) is not this close's to end.
dialog.addEventListener("close", () => {
  if (dialog.open) return;
  const opener = deciding && deciding.opener;
  deciding = null;
  if (opener && opener.isConnected) {
    opener.focus();
  } else {
    const view = Object.values(views).find((section) => !section.hidden);
    const heading = view && view.querySelector("h2");
    if (heading) heading.focus();
  }
});

// -- signing in --------------------------------------------------------------------------

signIn(() => {
  switching = false;
  delete views.detail.dataset.key;
  activityFor = null;
  refresh();
}, () => {
  pendingRows.replaceChildren();
  historyRows.replaceChildren();
  document.title = TITLE;
  liveSeen = null;
  views.detail.replaceChildren();
  delete views.detail.dataset.key;
  for (const section of Object.values(views)) section.hidden = true;
  shownOnce = false;
  switching = false;
  signInAgain.hidden = true;
  signedOut();
});

document.getElementById("switch").addEventListener("click", () => {
  switching = true;
  loginForm.hidden = false;
  document.getElementById("token").focus();
});

offerNotifications();
setInterval(refresh, REFRESH_MS);
refresh();
