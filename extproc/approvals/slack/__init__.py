"""Approvals in Slack, as a Slack app: a message with Approve and Deny buttons, kept up to
date as the approval changes, and Slack users linked to signed-in identities.

`web_api.py` calls Slack's Web API, `blocks.py` draws what Slack shows, `messages.py`
posts each approval's message and redraws it on every change, `links.py` keeps which
identity each Slack user decides as, `emails.py` links one by a verified e-mail where
`link_by_email` allows. The interactivity endpoint itself, which Slack
calls when a button is clicked, is on the admin port (admin/slack/).
"""
