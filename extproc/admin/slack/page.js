// The page a Slack user reaches from the link tollgate sent them in Slack: signed in, they
// link their Slack user to who they are (POST /slack/link with the link's one-time code).
"use strict";

const code = new URLSearchParams(location.search).get("code") || "";
const linkButton = document.getElementById("link");

function shown() {
  const token = sessionStorage.getItem(KEY);
  document.getElementById("login").hidden = Boolean(token);
  document.getElementById("session").hidden = !token;
  linkButton.disabled = !code;
  if (!code) {
    say("This page needs the link tollgate sent you in Slack (it carries a one-time code): "
        + "click a button in Slack again for a new one.", true);
  } else if (!token) {
    say("Sign in, then link your Slack user to who you are.", false);
  } else {
    say("Signed in: link your Slack user to this identity?", false);
  }
}

linkButton.addEventListener("click", async () => {
  try {
    const made = await call("/slack/link", "POST", { code });
    say("Linked: Slack user " + made.slack_user + " now decides as " + made.sub
        + " (groups: " + (made.groups.join(", ") || "none") + ") until "
        + AdminTime.utc(made.expires_us) + ". Back in Slack, click again.", false);
    linkButton.disabled = true;
    history.replaceState(null, "", location.pathname);  // the code is spent
  } catch (error) {
    say(error.status === 401 ? "Sign in first: " + error.message : error.message, true);
  }
});

signIn(shown, shown);
shown();
