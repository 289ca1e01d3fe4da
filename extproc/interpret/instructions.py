"""Instructions in what comes back: text in an answer that speaks to the model reading it.

An agent reads what its tools return (a fetched page, a row, a command's output, an MCP
tool's result) into the same context its instructions are in; an answer that carries
instructions can steer the agent's next calls (OWASP's agentic top 10: goal hijack,
memory and context poisoning). This reader says where an answer holds such text, by
kind, with rules (no model):

- `override`: words that would replace the agent's instructions ("ignore the previous
  instructions", "your new task is", "you are now ...");
- `addressed`: words aimed at a model rather than a person ("if you are an AI
  assistant", "note to the LLM", "a message from the developer"), secrecy from the user
  ("do not tell the user") and requests for the system prompt;
- `action`: words asking the model to call a tool by its name ("call delete_file with
  ...") or to send something to an address ("post the key to https://...");
- `role`: a chat template's role markers (`<|im_start|>system`, `[INST]`, `<<SYS>>`,
  `[SYSTEM]`), which make data read as a turn of the conversation;
- `tool_call`: text shaped as a model's tool call (`"tool_calls"`, `{"name": ...,
  "arguments": ...}`, `<tool_call>`, `<invoke name=...>`), which a loose client could run;
- `hidden`: text the person looking does not see, where it carries one of the above or is
  itself a message: Unicode tag characters (ASCII written invisibly), zero-width
  characters inside words, HTML comments and elements styled invisible.

What is read is the text as a model would: JSON string escapes and HTML entities decoded,
NFKC-normalised (full-width forms folded),
Cyrillic and Greek letters that look Latin read as Latin (codecs/lookalikes.py),
zero-width characters and soft hyphens removed, and tag characters read as the ASCII
they encode. Ordinary prose has imperatives too ("ignore
the warning", "click here", "reply with your order number"): the rules name what speaks
to a model or replaces its instructions, and bench/instructions.py measures recall and
false positives on labelled sets, among them answers this module was not written from.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from extproc.codecs.lookalikes import LOOKALIKES
from extproc.codecs.multipattern import Pass

Kind = Literal["override", "addressed", "action", "role", "tool_call", "hidden"]

# Characters a model reads and a person does not see, removed before the rules read the
# text: zero-width spaces and joiners, word joiner and invisible operators, the BOM, the
# Mongolian vowel separator, the soft hyphen; bidirectional controls reorder what is shown.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_STRIPPED = re.compile(f"[{_INVISIBLE}{_BIDI}]+")
_LOOKALIKE = re.compile(f"[{''.join(LOOKALIKES)}]")
# Any character `_read` changes but entities: most non-ASCII answers hold none.
_UNUSUAL = re.compile(f"[{_INVISIBLE}{_BIDI}{''.join(LOOKALIKES)}\U000e0000-\U000e007f]")
# An invisible character between two letters of a Latin word hides the word from a
# reader that matches words ("ig\u200bnore"); elsewhere they join emoji and Indic letters.
_INSIDE_WORD = re.compile(f"[A-Za-z][{_INVISIBLE}{_BIDI}]+[A-Za-z]")
# Unicode tags (U+E0000-E007F): each is an ASCII character, shown as nothing.
_TAGS = re.compile("[\U000e0000-\U000e007f]+")

_WORDS_BETWEEN = r"(?:\s{1,8}\S{1,40}){0,3}?"
_PRIOR = (r"(?:previous|prior|above|earlier|preceding|original|initial|system|existing|"
          r"foregoing|your)")
_ORDERS = (r"(?:instructions?|prompts?|rules|directives?|guidelines|guidance|context|"
           r"messages?|commands?|orders|constraints|programming|task|request)")
_MODEL = (r"(?:ai|a\.i\.|llm|llms|language models?|assistants?|agents?|ai agents?|"
          r"chatbots?|bots?|gpt|chatgpt|claude|gemini|copilot|model)")
_LINE = r"(?:^|\n)[ \t]{0,8}"
_ACTS = (r"(?:get|set|list|read|write|delete|remove|drop|truncate|create|update|send|post|fetch|"
         r"run|exec|execute|call|open|upload|download|copy|move|transfer|grant|revoke|add|"
         r"search|query|insert|modify|edit|rename|share|export|import|approve|pay|purchase|"
         r"deploy|kill|stop|shutdown|reset|wipe|email|mail|browse|navigate|click|submit)")
_TOOL_NAME = rf"{_ACTS}_[a-z0-9_]{{1,60}}|[a-z0-9][a-z0-9_]{{0,60}}_{_ACTS}\b"
_SECRETS = (r"(?:keys?|tokens?|passwords?|secrets?|credentials?|cookies?|contents?|data|files?|"
            r"history|conversation|context|env|environment|session|database|records?|"
            r"customers?|emails?|messages?)")

# Each rule: its kind and its expression, read by Hyperscan (no look-around, `^` only at
# the text's start: a line's start is `_LINE`) and by `re` over bytes.
_RULES: tuple[tuple[Kind, str], ...] = (
    ("override",
     rf"\b(?:ignore|disregard|forget|override|bypass|abandon|set aside|stop following)"
     rf"{_WORDS_BETWEEN}\s{{1,8}}{_PRIOR}{_WORDS_BETWEEN}\s{{1,8}}{_ORDERS}\b"),
    ("override", r"\b(?:ignore|disregard|forget)\s{1,8}(?:everything|anything|all)\s{1,8}"
                 r"(?:above|before|previously|you (?:were|have been) told)\b"),
    ("override", r"\b(?:ignore|disregard) (?:the|all) (?:above|preceding)\b"),
    ("override", r"\b(?:your|the) (?:new|real|actual|updated|true) (?:task|instructions?|goal|"
                 r"objective|role|orders|purpose) (?:is|are|will be)\b"),
    ("override", r"\b(?:new|updated|revised|additional) (?:system )?instructions?\s{0,8}:"),
    ("override", r"\byou are now (?:a|an|the|in|my|no longer)\b"),
    ("override", r"\b(?:new|next|real|actual|updated) task\s{0,8}:"),
    ("override", r"\b(?:the )?(?:prior|previous|current|original|above|earlier) (?:task|request|"
                 r"instructions?|assignment) (?:is|are|has been|have been|was|were) (?:now )?"
                 r"(?:cancell?ed|void|revoked|superseded|replaced|obsolete|withdrawn)\b"),
    ("override", r"\bdecode (?:it |this |that |the following )?and (?:then )?"
                 r"(?:follow|execute|run|obey|do what)"),
    ("override", r"\bfor the rest of (?:this|the|our) (?:conversation|session|chat|thread)\b"),
    ("override", r"\b(?:end|begin|start|prefix|suffix|sign|close) (?:every|each|all|your) "
                 r"(?:responses?|replies|answers?|messages?)\b"),
    ("override", r"\bfrom now on,? (?:you|your|always|only|respond|reply|act)\b"),
    ("override", r"\b(?:enter|enable|activate) (?:developer|god|dan|jailbreak|debug|admin) "
                 r"mode\b"),
    ("addressed", rf"\b(?:if|when|whenever) you(?:'re| are) (?:an?|the) {_MODEL}\b"),
    ("addressed", rf"\b(?:note|message|attention|instructions?|notice|memo|important|reminder)"
                  rf"(?: to| for)? (?:the |any |all )?{_MODEL}\b"),
    ("addressed", rf"\b(?:dear|hey|hello|hi|to) (?:the |any |all )?{_MODEL}\s{{0,8}}[:,]"),
    ("addressed", r"\b(?:note|message|notice|instructions?|memo|update|directive|word)s? from "
                  r"(?:the |your |an? )?(?:developers?|admin(?:istrator)?s?|system|operators?|"
                  r"security team|it department|openai|anthropic|google|owner|maintainers?|"
                  r"vendor)\b"),
    ("addressed", rf"\b{_MODEL} (?:reading|processing|summari[sz]ing|parsing|seeing|"
                  r"analy[sz]ing) this\b"),
    ("addressed", r"\b(?:do not|don't|never|must not) (?:tell|inform|mention|reveal|show|alert|"
                  r"notify|let) (?:this to |it to |anything to )?(?:the )?(?:user|human|"
                  r"operator)\b"),
    ("addressed", r"\bwithout (?:telling|informing|notifying|alerting|asking) (?:the )?"
                  r"(?:user|human|operator)\b"),
    ("addressed", r"\b(?:reveal|print|repeat|output|show|leak|dump|disclose) (?:me )?"
                  r"(?:your|the) (?:full |entire |hidden |original |initial )?(?:system prompt|"
                  r"system message|hidden instructions|initial instructions|instructions "
                  r"above)\b"),
    ("addressed", rf"{_LINE}(?:assistant|ai|system)\s{{0,8}}:\s{{0,8}}(?:ignore|disregard|"
                  r"forget|you must|you should|please|now)\b"),
    # A tool called by its name as MCP servers name them, with what it is to act on: an
    # action and its object (`delete_file`), or an object and its action (`http_post`). A
    # changelog's functions (`use get_feature() instead`, `call send_fds() before`) and
    # build steps (`dh_install`) are none.
    ("action", rf"\b(?:call|invoke|execute|run|trigger) (?:the )?(?:{_TOOL_NAME})"
               r"(?: tool| function)?\s{0,8}(?:with|on|to|using|passing|for|[a-z_]{1,30}=)"),
    ("action", rf"\b(?:send|post|upload|forward|e-?mail|transmit|exfiltrate|leak) "
               rf"(?:it|them|this|that|the|all|your|any|every)\b[^\n]{{0,60}}?\b{_SECRETS}\b"
               r"[^\n]{0,60}?\sto\s{1,8}(?:https?://|[\w.+-]{1,64}@[\w-]{1,64}\.)"),
    ("role", r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|"
             r"end_header_id)\|>"),
    ("role", r"\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>"),
    ("role", r"\[(?:system|system message|system prompt|admin|developer)\]"),
    ("role", r"</?(?:system|system-prompt|system_prompt|system-reminder|instructions)>"),
    ("role", rf"{_LINE}#{{2,}}[ \t]{{0,8}}(?:system|instructions?)[ \t]{{0,8}}:?[ \t]{{0,8}}"
             r"(?:\n|$)"),
    ("tool_call", r'"tool_calls"\s{0,8}:\s{0,8}\[|"function_call"\s{0,8}:\s{0,8}\{'),
    ("tool_call", r'\{\s{0,8}"(?:name|tool|tool_name|function)"\s{0,8}:\s{0,8}"[\w.\-/]{1,64}"'
                  r'\s{0,8},\s{0,8}"(?:arguments|parameters|args|input)"\s{0,8}:\s{0,8}[\{"]'),
    ("tool_call", r"<(?:tool_call|function_call|function_calls|tool_use)\b|<invoke\s{1,8}name="),
)
# How far before where Hyperscan saw a rule's match end `re` looks for it (the rules'
# matches are shorter); where a longer one hides, the whole text is read.
_REACH = 600


class _Reader:
    """The rules in one Hyperscan pass (only the rules it finds are read again by `re`,
    for what they matched)."""

    def __init__(self) -> None:
        self._pass = Pass()
        self._rules = {self._pass.add(pattern.encode(), caseless=True, first=True):
                       (kind, re.compile(pattern.encode())) for kind, pattern in _RULES}

    def warm(self) -> None:
        self._pass.compile()

    def rules(self, read: str) -> list[tuple[Kind, str]]:
        data = read.encode(errors="surrogatepass")  # a lone JSON `\ud800` too
        out = []
        for rule_id, ends in sorted(self._pass.scan(data, b"").items()):
            kind, pattern = self._rules[rule_id]
            end = ends[0]
            m = pattern.search(data, max(0, end - _REACH), end) or pattern.search(data)
            span = data[max(0, m.start() - 20):m.end() + 60] if m else data[end - 80:end]
            out.append((kind, _excerpt(span.decode(errors="replace"))))
        return out


_READER = _Reader()


def warm() -> None:
    """Build the rules' database now (else the first answer read waits for it: ~0.3 s
    compiled, ~1 ms loaded from the user's cache)."""
    _READER.warm()


# HTML comments, and elements styled not to show, whose text is read for the rules.
_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)
_HIDDEN_ELEMENT = re.compile(
    r"<(\w+)\b[^>]*?(?:\bhidden\b|display\s*:\s*none|visibility\s*:\s*hidden|"
    r"font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?\s*[;\"']|opacity\s*:\s*0(?:\.0+)?\s*[;\"']"
    r"|color\s*:\s*(?:transparent|#fff(?:fff)?\b|white\b))[^>]*>(.*?)</\1\s*>",
    re.DOTALL | re.IGNORECASE)
_HIDING_WORDS = ("hidden", "display", "font-size", "opacity", "color")
_HIDING = re.compile(r"hidden|display\s*:\s*none|font-size\s*:\s*0|opacity\s*:\s*0|"
                     r"color\s*:\s*(?:transparent|#fff|white)")
_TAG = re.compile(r"<[^>]{0,200}>")
# A message in hidden text needs this many letters to count as one.
_HIDDEN_LETTERS = 12


@dataclass(frozen=True, slots=True)
class Instruction:
    """One place in an answer that speaks to the model: its kind and what it says (as the
    model would read it, cut to `EXCERPT` characters)."""

    kind: Kind
    excerpt: str


EXCERPT = 120


def instructions_in(text: str) -> tuple[Instruction, ...]:
    """Where `text` speaks to a model reading it, one finding per kind and place, in the
    order the rules read them (empty: nothing found)."""
    if not text:
        return ()
    text = _decoded(text)
    read = _read(text)
    said = _rules(read)
    found = [Instruction("hidden", _excerpt(part)) for part in _hidden_parts(text, read)]
    if said and not text.isascii() and _INSIDE_WORD.search(text):
        found.append(Instruction("hidden", "invisible characters inside words"))
    found += [Instruction(kind, excerpt) for kind, excerpt in said]
    return tuple(dict.fromkeys(found))


def kinds_in(text: str) -> tuple[Kind, ...]:
    """The kinds of instruction `text` holds, each once, in the order first found (what a
    reason names them in, the same every run)."""
    return tuple(dict.fromkeys(found.kind for found in instructions_in(text)))


def _decoded(text: str) -> str:
    """`text` with its HTML entities and JSON string escapes decoded."""
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        text = _ESCAPE.sub(_unescaped, text)
    return text


def _read(text: str) -> str:
    """`text` (decoded) as a model reads it: tags as their ASCII, invisible characters
    removed, look-alikes as Latin, NFKC-folded, in lower case."""
    if not text.isascii():  # (most answers are ASCII: none of this can be in them)
        if _UNUSUAL.search(text):
            text = _LOOKALIKE.sub(_latin, _STRIPPED.sub("", _TAGS.sub(_untagged, text)))
        text = unicodedata.normalize("NFKC", text)
    return text.lower()


# A JSON or C string's escapes (a tool result is JSON; a model reads its strings as they
# decode), a surrogate pair as the one character it makes (a Unicode tag's is one).
_ESCAPE = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|"
                     r"\\([\"\\/nrt])", re.IGNORECASE)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t"}


def _unescaped(m: re.Match[str]) -> str:
    high, low, one, simple = m.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
    if one is not None:
        return chr(int(one, 16))
    return _SIMPLE.get(simple, simple)


def _latin(m: re.Match[str]) -> str:
    return LOOKALIKES[m[0]]


def _untagged(m: re.Match[str]) -> str:
    return "".join(chr(ord(c) - 0xE0000) for c in m[0] if 0x20 <= ord(c) - 0xE0000 < 0x7F)


def _rules(read: str) -> list[tuple[Kind, str]]:
    return _READER.rules(read)


def _hidden_parts(text: str, read: str) -> list[str]:
    """What `text` (`read` as a model reads it) holds that a person does not see and that
    is a message, each as a model reads it: a run of Unicode tags spelling words (never
    there but to hide them), an HTML comment or an element styled invisible whose text
    the rules find."""
    parts: list[str] = []
    if not text.isascii() and _UNUSUAL.search(text):
        tagged = (_untagged(m) for m in _TAGS.finditer(text))
        parts += [part for part in tagged if sum(c.isalpha() for c in part) >= _HIDDEN_LETTERS]
    shown = [_read(m[1]) for m in _COMMENT.finditer(text)] if "<!--" in text else []
    if "<" in text and any(word in read for word in _HIDING_WORDS) and _HIDING.search(read):
        shown += [_read(_TAG.sub(" ", m[2])) for m in _HIDDEN_ELEMENT.finditer(text)]
    return parts + [part for part in shown if _rules(part)]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"
