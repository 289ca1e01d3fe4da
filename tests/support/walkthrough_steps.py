"""The steps of the docs' walkthroughs (docs/walkthroughs/): each screen's images' stem and
what it shows, which is the images' alt text on the pages. Read by the walkthroughs
(tests/support/walkthroughs.py, which shoot them) and by tests/docs/test_walkthroughs.py,
which checks the pages show these images and no other, without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "walkthroughs" / "img"
# Each step is shot at both: a desktop's width and a phone's.
WIDTHS = {1280: {"width": 1280, "height": 800}, 390: {"width": 390, "height": 844}}


@dataclass(frozen=True)
class Step:
    """One screen of a walkthrough: its images' stem and what they show (their alt)."""

    name: str
    shows: str


APPROVER = (
    Step("approver-1-pending", "The approvals page: the agent's DELETE waits, with who "
         "asks, the target, why it is held, what approving grants and Approve and Deny."),
    Step("approver-2-why", "The approval's view: the statement, the reasons and rules that "
         "held it, what approving grants and how long the agent has waited."),
    Step("approver-3-earlier", "Further down the view: the requester's activity on the "
         "target in the last day, its refused DROP TABLE first."),
    Step("approver-4-confirm", "The confirmation: what approving grants, and a reason for "
         "the audit record."),
    Step("approver-5-then", "Approved: the page says what the DELETE then did (Then it "
         "ran: its target answered 200 OK)."),
    Step("approver-6-history", "The Decided tab: the approval, approved by dana, with her "
         "reason."),
)
SECURITY = (
    Step("security-1-home", "The landing page: who sam is and what sam may do, Sessions "
         "among it."),
    Step("security-2-sessions", "The sessions page: the agent's SSH shell open now, with "
         "Watch and End."),
    Step("security-3-watch", "The live view: who watches, and the agent's terminal as it "
         "is written, tollgate's refusal of cat .env on it."),
    Step("security-4-refused", "Below it, the shell's exchanges as they are recorded: cat "
         ".env refused, in red."),
    Step("security-5-end", "The End form: the reason, and the default lock of 15 minutes, "
         "saying until when."),
    Step("security-6-locked", "Ended: the locked identities list the agent, locked by sam "
         "until a time 15 minutes on, with the reason."),
)
AUDITOR = (
    Step("auditor-1-recordings", "The recordings page: the sessions and runs of the last "
         "days, with their counts of exchanges, refusals and holds."),
    Step("auditor-2-timeline", "The agent's run: how it is grouped, its counts, and its "
         "timeline's first entry with its place in the chain."),
    Step("auditor-3-refused", "Further down the timeline: the refused DROP TABLE, with the "
         "rule and the reason."),
    Step("auditor-4-report", "The compliance report's HTML: the period, the summary and "
         "the record's integrity verified."),
    Step("auditor-5-held", "The report's held actions: the DELETE, held, then approved by "
         "dana and run; and dana's decision with her reason."),
    Step("auditor-6-moderation", "The report's moderators' acts: sam's end of the agent's "
         "shell, and the lock, with the reason."),
)
WALKTHROUGHS = {"approver": APPROVER, "security-engineer": SECURITY, "auditor": AUDITOR}


def image_names() -> list[str]:
    """Every image the walkthroughs make, in their order."""
    return [f"{step.name}-{width}.png" for steps in WALKTHROUGHS.values() for step in steps
            for width in WIDTHS]
