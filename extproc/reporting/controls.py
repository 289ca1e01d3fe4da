"""The controls auditors ask about, and what a report's evidence does and does not show.

Each entry names a control (SOC 2, ISO/IEC 27001:2022 Annex A, PCI DSS v4.0), says
what this report's figures show toward it, and, as plainly, what they cannot: the
record shows what passed through tollgate, not that nothing went around it, nor what
people did with what they read.
"""

from __future__ import annotations

from typing import Any


def controls(data: dict[str, Any]) -> list[dict[str, str]]:
    """The mapping, its figures taken from the report's `data`."""
    records = data["records"]["total"]
    integrity = data["integrity"]
    refused = sum(data["refusals_by_rule"].values())
    identities, targets = len(data["identities"]), len(data["targets"])
    held, approvals = data["held"]["count"], data["approvals"]["count"]
    attempts = data["refused_attempts"]["count"]
    moderated = (data.get("moderation") or {"count": 0})["count"]
    approvers, readers = len(data["approvers"]), len(data["readers"])
    reads = sum(r["reads"] for r in data["readers"])
    refused_reads = sum(r["refused"] for r in (*data["readers"], *data["refused_readers"]))
    alerts, loads = data["alerts"]["count"], data["policy_loads"]["count"]
    masked = sum(data["masked_by_detector"].values())
    whole = "intact" if integrity["intact"] else "BROKEN (see Integrity)"
    retention = data["retention"]
    kept = (f"{retention['store_days']:g} days" if retention["store_days"]
            else "for ever (no store retention set)")
    entries = [
        ("SOC 2", "CC6.1", "Logical access security",
         f"Every exchange through tollgate was decided before it reached its target: "
         f"{records} records, from {identities} identities acting on {targets} targets, "
         f"{approvers} approvers and {readers} readers of the record (counted apart), each "
         "with the identity its verified token named (anonymous only where a target "
         "allows it) and the policy's decision.",
         "That the agents' credentials are issued, rotated and revoked properly; that the "
         "gateway is the only network path to the targets."),
        ("SOC 2", "CC6.3", "Access authorised, modified and removed by role",
         f"Policy decided each access: {refused} refusals by rule, {held} actions held for "
         f"a person, {approvals} approval decisions with who decided, when and why, "
         f"{attempts} refused attempts at deciding (one's own request, a denial without a "
         f"reason, not an approver); the policy revisions in force and {loads} recorded "
         "loads.",
         "That the policies match the organisation's access matrix, or that approvers "
         "were the right people: both are reviews people do."),
        ("SOC 2", "CC6.6 / CC6.7", "Boundaries; data in transit restricted",
         f"What left the targets was masked by detector ({masked} values masked in "
         "recorded exchanges); refused exchanges are listed by rule.",
         "Transport encryption between the agents, the gateway and the targets, which "
         "the deployment's TLS settings, not this record, show."),
        ("SOC 2", "CC7.2", "Monitoring for anomalies",
         f"{alerts} policy alerts raised in the period (rule, severity, identity), and "
         "activity per identity and over time.",
         "That anyone read the alerts or acted on them."),
        ("SOC 2", "CC7.3", "Evaluation of security events",
         f"Held actions and their approvals or denials ({held} held, {approvals} "
         f"decisions), each with its reason; {moderated} moderators' acts on live "
         "sessions (sessions ended, identities locked and unlocked), each with who and "
         "why.",
         "Investigations done outside tollgate, and their conclusions."),
        ("ISO/IEC 27001:2022", "A.8.15", "Logging",
         f"Every exchange left a record; the chain is {whole}: "
         f"{integrity['checkpoints']} signed checkpoints and {integrity['anchors']} "
         "anchored statements checked.",
         "Logs of systems other than tollgate, and of access that bypassed it."),
        ("ISO/IEC 27001:2022", "A.8.16", "Monitoring activities",
         f"{alerts} alerts, {refused} refusals, activity per day or hour and per "
         "identity.",
         "That monitoring was reviewed by people at the intervals the policy sets."),
        ("PCI DSS v4.0", "10.2", "Audit logs capture events",
         "Each record holds who (verified identity), what (request, decision, rules), "
         "when (UTC microseconds), where (target) and the outcome.",
         "Events on the cardholder systems themselves (operating system, database "
         "logs); that clocks were synchronised (10.6), which the hosts' NTP shows."),
        ("PCI DSS v4.0", "10.3", "Audit logs protected",
         f"SHA-256 chaining and Ed25519-signed checkpoints (key {integrity['key_id']}); "
         "anchor logs outside the store; this report is signed with the audit key in "
         "each of its forms (JSON, HTML, PDF: `tollgate audit verify-report` checks any). "
         "Reads of the record through the recordings API and tollgate's audit commands "
         f"are recorded too: {reads} by {readers} readers in the period, and "
         f"{refused_reads} refused.",
         "Who can read the store or the signing key: that is the host's access "
         "control; a read of the store itself, not through tollgate, leaves no record."),
        ("PCI DSS v4.0", "10.5", "Audit log history retained",
         f"Records are kept {kept}; per-target retention and legal holds are listed "
         "under Retention, and pruning leaves signed prune statements.",
         "That records were kept for a year with three months at hand, unless the "
         "period and retention above cover it; backups of the store."),
        ("PCI DSS v4.0", "10.7", "Failures of critical controls detected",
         f"Verification found the record {whole}; refusals with a tollgate code (the "
         "record or policy unavailable: fail closed) are counted under Refusals.",
         "Failures of systems outside tollgate, or a gateway that was stopped: a gap "
         "in activity shows only that nothing was recorded."),
    ]
    return [{"framework": framework, "control": control, "title": title, "shows": shows,
             "does_not_show": does_not} for framework, control, title, shows, does_not
            in entries]
