"""A report as one self-contained HTML page (inline CSS and SVG, nothing fetched), and
as PDF from that page.

The page is made from the same signed JSON as the report's JSON file: it embeds that
JSON (a data block, never run; the PDF attaches it as a file), shows its hash, and is
written with a blank seal for sealing.py to fill. On paper every page's margins name
the period, the report's hash and the page's number of the pages.

Much of what a report shows was written by agents or their callers (identities, reasons,
summaries, alert messages): every value from the record is escaped here, in one place
(`_e`), and the page's Content-Security-Policy forbids scripts and fetches besides.

Nothing is cut off, and no word is broken: cells wrap at spaces and hyphens, and only a
word too long for any column (an identity, an id, a hash, a table's name) wraps anywhere;
on paper, tables of many columns are laid out with fixed column shares (`widths`), and
the sections that hold them are printed on landscape pages; on a screen narrower than a
table, the table scrolls in its own box.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from string import Template
from typing import Any

from extproc.codecs.text import utc
from extproc.reporting import charts, sealing
from extproc.reporting.evidence import Report

_TEMPLATE = Template((Path(__file__).parent / "report.html").read_text(encoding="utf-8"))
_TITLE = "Tollgate audit report"
# Problems listed in the integrity section (the JSON has them all, up to verify's cap).
_MOST_PROBLEMS = 50
# Why the approvals API refused an attempt at deciding, in words (its code follows).
_REFUSED_BECAUSE = {
    "self_approval": "their own request: nobody decides their own",
    "reason_required": "a denial without a reason",
    "forbidden": "not one of its approvers",
    "not_pending": "no longer pending (decided or expired)",
    "already_approved": "a second approval by one who had approved it (two-person rule)",
    "not_found": "no such approval",
    "bad_request": "a malformed request",
    "recording_unavailable": "the record could not take it",
    "store_unavailable": "the store could not answer",
    "internal_error": "an error in tollgate",
}


def render(report: Report, document: dict[str, Any]) -> str:
    """The page, with a blank seal; `document`: the report's data signed (signing.py),
    embedded whole."""
    data = report.data
    period = data["period"]
    scope = f"target {data['target']}" if data["target"] else "all targets"
    span = f"{utc(period['since_us'])} to {utc(period['until_us'])} UTC, {scope}"
    meta = (f"Records started {span}; store {data['store']}; generated "
            f"{utc(data['generated_us'])} UTC from the audit record (nothing in it was "
            "entered by hand).")
    digest = sealing.report_hash(document)
    signed = (f"Report SHA-256 {digest}: the hash of its JSON form, which the audit key "
              f"{document['signature']['key_id']} signed; that JSON is embedded in this "
              "file, and this file is sealed with the same key. Check it with "
              "`tollgate audit verify-report FILE`.")
    sections = [_summary(data), _integrity(data["integrity"]), _activity(data),
                _privileged(data), _moderation(data), _refusals(data), _masking(data),
                _alerts(data),
                _policies(data), _retention(data["retention"]), _controls(data["controls"])]
    embedded = json.dumps(document, ensure_ascii=False, indent=1).replace("<", "\\u003c")
    return _TEMPLATE.substitute(
        title=_TITLE, meta=_text(meta), signed=_text(signed), sections="\n".join(sections),
        seal=sealing.seal_placeholder("html"), embedded=embedded,
        json_block=sealing.JSON_BLOCK, margin_period=_css_string(f"Records started {span}"),
        margin_hash=_css_string(f"Report SHA-256 {digest}"))


def pdf(page: str, attached: bytes) -> bytes:
    """The page as PDF (WeasyPrint, which needs Pango from the system), the signed JSON
    `attached` as a file of it; not yet sealed."""
    from weasyprint import HTML, Attachment  # heavy, and only a PDF needs it

    document: bytes = HTML(string=page).write_pdf(attachments=[Attachment(
        string=attached.decode(), name=sealing.ATTACHMENT,
        description="This report signed with the audit key (tollgate audit verify-report)")])
    return document


# -- sections ----------------------------------------------------------------------------


# How the period's exchanges ended, in words, by the action that settled each.
_EXCHANGES_ENDED = {
    "allow": "exchanges allowed",
    "deny": "exchanges refused",
    "hold": "exchanges held and still undecided when they ended (their clients were told "
            "to retry)",
    "none": "exchanges whose client went away before anything was decided",
}


def _summary(data: dict[str, Any]) -> str:
    records = data["records"]
    rows = [("records in the period", records["total"]),
            *((f"kind {kind}", n) for kind, n in records["by_kind"].items()),
            *((_EXCHANGES_ENDED.get(action, f"exchanges that ended {action}"), n)
              for action, n in records["exchanges_by_action"].items()),
            ("identities acting through the gateway", len(data["identities"])),
            ("approvers (deciding, not acting)", len(data["approvers"])),
            ("readers of the record (reading, not acting)", len(data["readers"])),
            ("targets acted on", len(data["targets"]))]
    return _section("Summary", _table(("", "count"), rows, numeric={1}))


def _integrity(integrity: dict[str, Any]) -> str:
    tone = ("ok" if integrity["vouched"] else "warn") if integrity["intact"] else "broken"
    parts = [f'<p class="verdict {tone}">{_e(integrity["statement"])}</p>',
             _p(f"Verified over the whole store with audit key {integrity['key_id']}. "
                f"Signed statements checked: {integrity['checkpoints']}; anchored "
                f"statements checked: {integrity['anchors']}.")]
    parts.append(_table(
        ("chain (writer)", "records", "first..last", "pruned up to", "signed up to",
         "anchored up to", "vouched for"),
        [(c["writer"], c["records"],
          f"{c['first']}..{c['last']}" if c["records"] else "none",
          c["pruned_to"] or "nothing", c["checkpointed_to"] or "none",
          "none" if c["anchored_to"] is None
          else f"{c['anchored_to']} ({utc(c['anchored_us'] or 0)} UTC)",
          "yes" if c["unvouched"] is None else f"no: {c['unvouched']}")
         for c in integrity["chains"]], numeric={1},
        widths=(18, 9, 13, 12, 12, 20, 16)))
    logs = integrity["anchor_logs"]
    parts.append(_table(("anchor log", "statements"), [
        (log["path"], log["statements"] if log["exists"] else "missing") for log in logs])
        if logs else _p("No anchor log (recording.checkpoint_file is off).", "empty"))
    if integrity["problems"]:
        listed = integrity["problems"][:_MOST_PROBLEMS]
        parts.append(f"<h3>Problems ({integrity['problem_count']})</h3><ul>"
                     + "".join(f"<li>{_e(p)}</li>" for p in listed) + "</ul>")
    return _section("Integrity of the record", *parts)


def _activity(data: dict[str, Any]) -> str:
    activity = data["activity"]
    period = data["period"]
    chart = charts.activity(activity["buckets"], activity["bucket"], period["since_us"],
                            period["until_us"])
    return _section(
        "Activity",
        _chart(chart) if chart else _p("No records in the period.", "empty"),
        "<h3>Identities acting through the gateway</h3>",
        _table(("identity", "records", "refused", "held"),
               [(r["identity"], r["records"], r["refused"], r["held"])
                for r in data["identities"]], numeric={1, 2, 3}),
        "<h3>Approvers</h3>",
        _p("People who decided held actions, counted apart from the identities acting: "
           "their decisions, and their attempts the approvals API refused."),
        _table(("approver", "decisions", "refused attempts"),
               [(r["approver"], r["decisions"], r["refused_attempts"])
                for r in data["approvers"]], numeric={1, 2}),
        "<h3>Readers of the record</h3>",
        _p("People who read recordings through the recordings API or tollgate's audit "
           "commands (each read is itself a record), counted apart from the identities "
           "acting; a reader is someone who was answered at least once."),
        _table(("reader", "reads", "refused", "records returned"),
               [(r["reader"], r["reads"], r["refused"], r["records_returned"])
                for r in data["readers"]], numeric={1, 2, 3}),
        _refused_readers(data),
        "<h3>Targets</h3>",
        _table(("target", "records", "refused", "held"),
               [(r["target"], r["records"], r["refused"], r["held"])
                for r in data["targets"]], numeric={1, 2, 3}))


def _refused_readers(data: dict[str, Any]) -> str:
    """Who asked to read the record and was only refused, and the refused reads admin
    pages made on their own (no person asked for them)."""
    parts = []
    if data["refused_readers"]:
        parts += [_p("Refused every read they asked for (not readers of the record):"),
                  _table(("identity", "refused reads"),
                         [(r["identity"], r["refused"]) for r in data["refused_readers"]],
                         numeric={1})]
    background = data["background_refused"]
    if background:
        parts.append(_p(f"Refused reads an admin page made on its own, nobody asking: "
                        f"{sum(background.values())} (the page of "
                        + ", ".join(f"{who}: {n}" for who, n in background.items())
                        + "); counted neither as reads nor as attempts."))
    return "\n".join(parts)


def _privileged(data: dict[str, Any]) -> str:
    held, approvals, refused = data["held"], data["approvals"], data["refused_attempts"]
    return _section(
        "Privileged and held actions",
        _p(f"Exchanges a policy held for a person: {held['count']}"
           + _beyond(held, data)),
        _table(("record", "when (UTC)", "identity", "target", "what", "rules", "approvers",
                "approval", "what happened"),
               [(h["id"], utc(h["started_us"]), h["identity"], h["target"], h["what"],
                 ", ".join(h["rules"]), ", ".join(h["approvers"]),
                 (h["approval"] or {}).get("id") or "none", h["happened"])
                for h in held["listed"]],
               widths=(8, 9, 11, 7, 20, 9, 8, 8, 20)),
        _p(f"Approval decisions (who approved or denied, when, why, and what came of it): "
           f"{approvals['count']}" + _beyond(approvals, data)),
        _table(("record", "when (UTC)", "by", "approval", "decision", "asked by", "reason",
                "what", "then"),
               [(a["id"], utc(a["started_us"]), a["identity"], *_decided(a))
                for a in approvals["listed"]],
               widths=(8, 9, 9, 8, 10, 9, 13, 16, 18)),
        _p("Refused attempts at deciding (the approvals API refused them; nothing was "
           f"decided): {refused['count']}" + _beyond(refused, data)),
        _table(("record", "when (UTC)", "by", "tried to", "approval", "refused because",
                "asked by", "what"),
               [(a["id"], utc(a["started_us"]), a["identity"], a["tried"] or "decide",
                 *_attempted(a)) for a in refused["listed"]],
               widths=(9, 10, 11, 7, 9, 19, 11, 24)),
        wide=True)


def _moderation(data: dict[str, Any]) -> str:
    moderation = data.get("moderation") or {"count": 0, "listed": []}
    return _section(
        "Live sessions ended and identities locked",
        _p("Moderators' acts (sessions ended, identities locked and unlocked, and the "
           f"attempts the sessions API refused): {moderation['count']}"
           + _beyond(moderation, data)),
        _table(("record", "when (UTC)", "by", "did", "session", "identity", "front",
                "target", "reason", "outcome"),
               [(m["id"], utc(m["started_us"]), m["moderator"], _moderated(m),
                 m["session"] or "", m["identity"] or "", m["front"] or "",
                 m["target"] or "", m["reason"] or "",
                 f"refused ({m['refusal']})" if m["refusal"] else "done")
                for m in moderation["listed"]],
               widths=(9, 10, 9, 12, 12, 10, 7, 7, 16, 8))
        if moderation["listed"] else "",
        wide=True)


def _moderated(act: dict[str, Any]) -> str:
    """What a moderator did: the action, and a lock's end."""
    action = str(act["action"] or "")
    if action in ("lock", "end") and act.get("lock_until_us"):
        return f"{action}, locked until {utc(act['lock_until_us'])}"
    if action == "lock":
        return "lock, until unlocked"
    return action


def _refusals(data: dict[str, Any]) -> str:
    by_rule = data["refusals_by_rule"]
    chart = charts.refusals(by_rule)
    return _section(
        "Refusals by rule",
        _chart(chart) if chart else _p("No refusals in the period.", "empty"),
        _table(("rule", "refusals"), list(by_rule.items()), numeric={1}) if by_rule else "")


def _masking(data: dict[str, Any]) -> str:
    masked = data["masked_by_detector"]
    return _section(
        "Masked values by detector",
        _table(("detector", "values masked"), list(masked.items()), numeric={1})
        if masked else _p("Nothing was masked in the period's exchanges.", "empty"))


def _alerts(data: dict[str, Any]) -> str:
    alerts = data["alerts"]
    return _section(
        "Alerts",
        _p(f"Alerts raised: {alerts['count']}" + _beyond(alerts, data)),
        _table(("when (UTC)", "rule", "severity", "identity", "target", "message"),
               [(utc(a["started_us"]), a.get("rule", ""), a.get("severity", ""),
                 a["identity"], a["target"], a.get("message", ""))
                for a in alerts["listed"]], widths=(13, 16, 9, 16, 12, 34))
        if alerts["listed"] else "")


def _policies(data: dict[str, Any]) -> str:
    policies, loads = data["policies"], data["policy_loads"]
    parts = [_table(("revision", "loaded (UTC)", "decisions", "by action"), [
        (r["revision"], ", ".join(utc(us) for us in r["loaded_us"]) or "no load record",
         r["decisions"], ", ".join(f"{a} {n}" for a, n in r["by_action"].items()))
        for r in policies["revisions"]], numeric={2})]
    if policies["unrecorded"]:
        parts.append(_p("Revisions that decided with no load record in the store (loaded "
                        "before loads were recorded, or their record pruned): "
                        + ", ".join(policies["unrecorded"])))
    parts.append(f"<h3>Loads ({loads['count']}{_beyond(loads, data)})</h3>")
    parts.append(_p("The load in force as the period began, then the period's; loads in a "
                    "row of the same revision, modules and data files are one line."))
    parts.append(_table(("when (UTC)", "loads", "records", "revision", "engine", "why",
                         "modules (SHA-256)", "data files"),
                        [(_span(x["first_us"], x["last_us"]), x["count"],
                          x["first_id"] if x["count"] == 1
                          else f"{x['first_id']} .. {x['last_id']}",
                          x["revision"], x["engine"], ", ".join(map(str, x["why"])),
                          _files(x["modules"]), _files(x["data_files"]))
                         for x in policies["loads"]],
                        numeric={1}, widths=(12, 6, 11, 11, 8, 8, 26, 18)))
    return _section("Policy revisions in force", *parts, wide=True)


def _retention(retention: dict[str, Any]) -> str:
    days = retention["store_days"]
    parts = [_p(f"Store: records older than {days:g} days are pruned, leaving a signed prune "
                "statement." if days else "Store: every record is kept (no retention set).")]
    if retention["targets"]:
        parts.append(_table(("target", "kept"), [
            (name, f"{d:g} days" if d else "for ever")
            for name, d in retention["targets"].items()]))
    if not retention["legal_holds_table"]:
        parts.append(_p("Legal holds: none (this store has no legal holds table)."))
    elif not retention["legal_holds"]:
        parts.append(_p("Legal holds: none."))
    else:
        parts.append(_table(("session held", "since (UTC)", "by", "reason"), [
            (h["session_id"], utc(h["held_us"]), h["held_by"], h["reason"])
            for h in retention["legal_holds"]]))
    return _section("Retention", *parts)


def _controls(entries: list[dict[str, str]]) -> str:
    return _section(
        "Controls: what this evidence shows, and what it does not",
        _table(("framework", "control", "this report shows", "it does not show"), [
            (e["framework"], f"{e['control']} {e['title']}", e["shows"], e["does_not_show"])
            for e in entries]),
        _p("This report is signed with the audit key in each of its forms: its JSON, "
           "embedded in this page and attached to its PDF, and each file as a whole. "
           "`tollgate audit verify-report FILE` checks any of them."))


# -- pieces ------------------------------------------------------------------------------


def _css_string(text: str) -> str:
    """`text` as a quoted CSS string: every character but letters, digits, spaces and
    plain punctuation escaped, so nothing closes the string or the style element."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_()/")
    return '"' + "".join(c if c in safe else f"\\{ord(c):x} " for c in text) + '"'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _p(text: str, css: str | None = None) -> str:
    return f'<p class="{css}">{_text(text)}</p>' if css else f"<p>{_text(text)}</p>"


def _section(title: str, *parts: str, wide: bool = False) -> str:
    """A section; `wide`: its tables have many columns, and it is printed landscape."""
    start = '<section class="wide">' if wide else "<section>"
    return f"{start}<h2>{_e(title)}</h2>\n" + "\n".join(p for p in parts if p) + \
        "\n</section>"


def _table(heads: Sequence[str], rows: Iterable[Sequence[Any]],
           numeric: set[int] | frozenset[int] = frozenset(),
           widths: Sequence[int] | None = None) -> str:
    """A table; `widths`: each column's share of the width (in per cent), for a table of
    many columns, so that a long value wraps in its own column rather than squeezing the
    others."""
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(v)}</td>' if i in numeric else f"<td>{_text(v)}</td>"
                         for i, v in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        return _p("None.", "empty")
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(heads))
    if widths is None:
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    else:
        assert len(widths) == len(heads) and sum(widths) == 100, widths
        columns = "".join(f'<col style="width: {w}%">' for w in widths)
        table = (f'<table class="fixed"><colgroup>{columns}</colgroup><thead><tr>{head}'
                 f"</tr></thead><tbody>{body}</tbody></table>")
    # A table wider than a phone scrolls in its own box (a keyboard scrolls it too once
    # it has the focus), rather than squeezing its columns until words break.
    return (f'<div class="scroll" tabindex="0" role="region" '
            f'aria-label="{_e(", ".join(h for h in heads if h) or "table")}">{table}</div>')


# A word this long (an identity, an id, a hash, a table's name) may wrap anywhere; shorter
# ones wrap only at spaces and hyphens.
_LONG_WORD = 24


def _text(value: Any) -> str:
    """A cell's or a paragraph's text, escaped; its long words marked to wrap anywhere
    (CSS `.id`), so that they never widen a column or the page, and the others never
    break."""
    text = str(value)
    if len(text) <= _LONG_WORD:
        return _e(text)
    return "".join(f'<span class="id">{_e(part)}</span>'
                   if len(part) > _LONG_WORD and not part.isspace() else _e(part)
                   for part in re.split(r"(\s+)", text) if part)


def _chart(svg: str) -> str:
    """A chart drawn by charts.py: its text is paths, nothing from the record is markup."""
    return f'<div class="chart">{svg}</div>'


def _beyond(listed: dict[str, Any], data: dict[str, Any]) -> str:
    if listed["count"] <= len(listed["listed"]):
        return ""
    return f" (the first {data['listed_at_most']} are listed)"


def _decided(record: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """An approver's decision: the approval's id, the decision as they made it (never the
    status they left it in: a first approval of two leaves it pending), who asked, their
    reason, what the held exchange does, and what came of it."""
    approval = record["approval"] or {}
    return (approval.get("id") or "none", record["decision"],
            approval.get("requested_by") or "", record.get("reason") or "",
            approval.get("summary") or "", record["then"])


def _attempted(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """A refused attempt at deciding: the approval (as it stayed), why the API refused,
    who asked, what the held exchange does."""
    approval = record["approval"] or {}
    code = record["refusal"]
    because = f"{_REFUSED_BECAUSE[code]} ({code})" if code in _REFUSED_BECAUSE else code
    return (approval.get("id") or "none", because, approval.get("requested_by") or "",
            approval.get("summary") or "")


def _span(first_us: int, last_us: int) -> str:
    return utc(first_us) if first_us == last_us else f"{utc(first_us)} to {utc(last_us)}"


def _files(files: list[dict[str, Any]]) -> str:
    return "; ".join(f"{f['name']} {(f['sha256'] or 'unreadable')[:16]}" for f in files) \
        or "none"
