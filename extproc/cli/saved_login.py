"""Where `tollgate login` keeps what it signed in with: the provider's ID token per admin
URL, in the user's config folder ($XDG_CONFIG_HOME/tollgate/login.json, else
~/.config/tollgate/login.json), readable by its owner alone (0600). The admin client sends
it when no token is given; `tollgate logout` forgets it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from extproc.codecs import private_file


def path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tollgate" / "login.json"


def _all() -> dict[str, Any]:
    try:
        found = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(logins: dict[str, Any]) -> None:
    """Never readable by others, not even for a moment, and never half written."""
    private_file.write(path(), json.dumps(logins, indent=2).encode())


def save(url: str, token: str, expires_at: float, who: str) -> Path:
    logins = _all()
    logins[url.rstrip("/")] = {"id_token": token, "expires_at": expires_at, "sub": who}
    _write(logins)
    return path()


def token(url: str) -> str | None:
    """The token kept for the admin API at `url`, unless it has expired."""
    kept = _all().get(url.rstrip("/"))
    if not isinstance(kept, dict) or not isinstance(kept.get("id_token"), str):
        return None
    expires = kept.get("expires_at")
    if isinstance(expires, int | float) and expires <= time.time():
        return None
    return str(kept["id_token"])


def forget(url: str) -> bool:
    """Whether a login for `url` was kept (and is now gone)."""
    logins = _all()
    if logins.pop(url.rstrip("/"), None) is None:
        return False
    _write(logins)
    return True
