// The landing page: who the viewer is and what they may do, by the rules the APIs apply
// (/ui/me for the monitor, the record and the live sessions; the approvals API's own
// `may_decide` for what waits), each with its link. The navigation and signing in are admin_page.js's.
"use strict";

const home = document.getElementById("home");

function text(id, value) {
  document.getElementById(id).textContent = visible(value);
}

// One line of what the viewer may do: a link when they may, why not when they may not.
function may(id, allowed, linkText, href, said) {
  const item = document.getElementById(id);
  item.replaceChildren(allowed ? link(linkText, href) : made("strong", null, linkText),
                       made("span", allowed ? null : "no", ": " + said));
}

function approvalsLine(waiting) {
  const mine = waiting.approvals.filter((approval) => approval.may_decide);
  const targets = [...new Set(mine.map((approval) => approval.target))].sort();
  if (waiting.approvals.length === 0) return "no request waits for an approval now.";
  if (mine.length === 0) {
    return "none of the " + waiting.approvals.length + " requests waiting now names you or "
      + "a group of yours as its approver (each request's policy rule names who decides).";
  }
  return "you may decide " + mine.length + " of the " + waiting.approvals.length
    + " requests waiting now (on " + targets.join(", ") + ").";
}

async function show() {
  if (!hasCaller()) return;
  try {
    const [me, waiting] = await Promise.all([call("/ui/me"),
                                             call("/approvals?status=pending&limit=100")]);
    text("me-sub", me.sub);
    text("me-email", me.email || "none given");
    text("me-groups", me.groups.length ? me.groups.join(", ") : "none");
    text("me-via", me.via === "session" ? "your identity provider (a session of this browser)"
      : "a token, kept for this tab");
    may("may-approvals", true, "Approvals", "/approvals/ui", approvalsLine(waiting));
    may("may-monitor", me.monitor.may, "Monitor", "/monitor/ui", me.monitor.may
      ? "you may watch what each identity has been doing."
      : "it is for its viewers (" + me.monitor.viewers.join(", ") + "), and you are not one.");
    const read = me.recordings;
    may("may-recordings", read.may, "Recordings", "/recordings/ui", !read.may
      ? read.why + "."
      : read.targets === null ? "you may read every target's records (each read is recorded)."
        : "you may read the records of " + read.targets.join(", ")
          + " (each read is recorded).");
    const live = me.sessions;
    may("may-sessions", live.may, "Sessions", "/sessions/ui", live.moderator
      ? "you may see the sessions open now, watch them, end them and lock identities out."
      : live.may ? "you may see the sessions open now and watch them."
        : "they are for their viewers (" + live.viewers.join(", ") + ") and moderators ("
          + live.moderators.join(", ") + "), and you are neither.");
    home.hidden = false;
    say("", false);
  } catch (error) {
    say(String(error.message), true);
  }
}

signIn(show, () => { home.hidden = true; });
if (new URLSearchParams(location.search).has("signed-out")) {
  say("You are signed out.", false);
}
show();
