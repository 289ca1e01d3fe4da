// The page a Slack user reaches from the link tollgate sent them in Slack: signed in, they
// see whose Slack user the link's one-time code speaks for (POST /slack/link/check), and
// link it to who they are (POST /slack/link), or leave it if it is not theirs.
"use strict";

const code = new URLSearchParams(location.search).get("code") || "";
const linkButton = document.getElementById("link");
const whose = document.getElementById("whose");

function slackUser(found) {
  return (found.slack_name ? "@" + found.slack_name + " (" + found.slack_user + ")"
          : found.slack_user) + " of Slack workspace " + found.team_id;
}

async function shown() {
  const token = hasCaller();
  document.getElementById("login").hidden = Boolean(token);
  document.getElementById("session").hidden = !token;
  linkButton.hidden = true;
  whose.textContent = "";
  if (!code) {
    say("This page needs the link tollgate sent you in Slack (it carries a one-time code): "
        + "click a button in Slack again for a new one.", true);
    return;
  }
  try {
    const found = await call("/slack/link/check", "POST", { code });
    whose.textContent = visible("Slack user " + slackUser(found) + " asks to decide as you, "
      + found.sub + " (groups: " + (found.groups.join(", ") || "none") + "). Link it only "
      + "if that Slack user is yours.");
    linkButton.hidden = false;
    say("", false);
  } catch (error) {
    say(error.status === 401 ? "Sign in, then link your Slack user to who you are."
        : error.message, error.status !== 401);
  }
}

linkButton.addEventListener("click", async () => {
  try {
    const made = await call("/slack/link", "POST", { code });
    say("Linked: Slack user " + slackUser(made) + " now decides as " + made.sub
        + " until " + AdminTime.utc(made.expires_us) + ". Back in Slack, click again.", false);
    linkButton.hidden = true;
    history.replaceState(null, "", location.pathname);  // the code is spent
  } catch (error) {
    say(error.message, true);
  }
});

signIn(shown, shown);
shown();
