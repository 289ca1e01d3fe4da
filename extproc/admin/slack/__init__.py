"""Slack on the admin port: the interactivity endpoint Slack calls when an approval's
button is clicked (actions.py, its requests checked by signature.py), and the page where a
Slack user links themselves to their signed-in identity."""

from extproc.admin.slack.actions import SlackActions

__all__ = ["SlackActions"]
