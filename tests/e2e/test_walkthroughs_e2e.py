"""The docs' walkthroughs (docs/walkthroughs/) played as `make walkthroughs` plays them, on a
real gateway, Debian's sshd and Chromium, but without writing their images: every step of
the approver's, the security engineer's and the auditor's is reached, and axe-core finds
no serious or critical violation on any of them at 1280 px or at 390 px wide.
"""

from __future__ import annotations

from tests.support.walkthrough_steps import WALKTHROUGHS
from tests.support.walkthroughs import play


def test_every_step_is_reached_and_axe_finds_no_serious_violation() -> None:
    camera = play(None, say=lambda _: None)
    assert camera.violations == []
    assert camera.taken == [step.name for steps in WALKTHROUGHS.values() for step in steps]
    assert camera.shot == []
