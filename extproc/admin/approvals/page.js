// The approvals page: lists what waits for the approver, approves or denies it through
// the API with the approver's own token (kept for this tab only). Everything shown comes
// from requests agents made, so it is set as text, never as markup, and its control and
// invisible characters are shown as escapes (`visible`).
"use strict";

const table = document.getElementById("approvals");
const rows = table.querySelector("tbody");

function grantText(approval) {
  return approval.grant_mode === "window"
    ? approval.requester + " on " + approval.target + " for " + approval.grant_minutes + " min"
    : "this request, once";
}

function rowFor(approval) {
  const row = document.createElement("tr");
  row.dataset.id = approval.id;
  cell(row, approval.id);
  cell(row, approval.requester);
  cell(row, approval.target);
  cell(row, approval.summary, "summary");
  cell(row, approval.reasons.join("; ") || approval.rules.join(", "));
  cell(row, approval.approvers.join(", "));
  cell(row, grantText(approval));
  cell(row, new Date(approval.expires_us / 1000).toLocaleString());
  const actions = cell(row, "", "actions");
  const reason = document.createElement("input");
  reason.placeholder = "reason (needed to deny)";
  reason.setAttribute("aria-label", "reason for " + approval.id);
  const approve = document.createElement("button");
  approve.textContent = "Approve";
  approve.className = "approve";
  approve.addEventListener("click", () => decide(approval.id, "approve", reason.value));
  const deny = document.createElement("button");
  deny.textContent = "Deny";
  deny.className = "deny";
  deny.addEventListener("click", () => decide(approval.id, "deny", reason.value));
  actions.append(reason, approve, deny);
  return row;
}

function show(approvals) {
  table.hidden = false;
  // A row already shown stays as it is, so a reason being typed keeps its text and focus
  // across the periodic listing; rows no longer pending go, new ones are added in order.
  const shown = new Map(Array.from(rows.querySelectorAll("tr[data-id]"),
                                   (row) => [row.dataset.id, row]));
  const pending = new Set(approvals.map((approval) => approval.id));
  for (const row of Array.from(rows.rows)) {
    if (!pending.has(row.dataset.id)) row.remove();
  }
  let next = rows.firstElementChild;
  for (const approval of approvals) {
    const row = shown.get(approval.id);
    if (row !== undefined && row === next) {
      next = row.nextElementSibling;
    } else {
      rows.insertBefore(row || rowFor(approval), next);
    }
  }
  if (approvals.length === 0) {
    const td = cell(rows.insertRow(), "Nothing waits for you.", "empty");
    td.colSpan = 9;
  }
}

let listing = 0;  // the latest listing asked for: an older answer arriving late is stale

async function refresh() {
  if (!sessionStorage.getItem(KEY)) return;
  const mine = ++listing;
  try {
    // What this approver may decide, and their own requests (which they may not).
    const answer = await call("/approvals?status=pending");
    if (mine !== listing) return;
    show(answer.approvals);
    say(answer.approvals.length + " pending. Updated " + new Date().toLocaleTimeString() + ".",
        false);
  } catch (error) {
    if (mine !== listing) return;
    table.hidden = true;
    say(String(error.message), true);
  }
}

async function decide(id, verb, reason) {
  try {
    const body = reason.trim() ? { reason: reason.trim() } : {};
    const answer = await call("/approvals/" + encodeURIComponent(id) + "/" + verb, "POST", body);
    await refresh();
    say(answer.id + " " + answer.status + " by " + answer.decided_by + ".", false);
  } catch (error) {
    say(String(error.message), true);
  }
}

signIn(refresh, () => {
  rows.replaceChildren();
  table.hidden = true;
});
setInterval(refresh, 5000);
refresh();
