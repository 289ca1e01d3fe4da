"""Whether an exchange is an administrative action, as the interpreters read it.

Counted in `input.activity` (`administrative`) and shown to the policy for the exchange
at hand (`input.activity.exchange.administrative`), so a pack can alert when an agent
drops a database, runs `sudo`, force-pushes or execs into a pod. It reads what the
interpreters already read — SQL statements' effects, a Kubernetes request's verb, the
argv of every command a tool call would run — never the raw bytes again.
"""

from __future__ import annotations

from typing import Any

# SQL effects (interpret/sql/effects.py) that administer rather than use the data, and
# those that hide what a statement does (code in a string, a statement nobody could
# name, a setting after which the server reads SQL otherwise): what cannot be read is
# counted as administering.
_SQL_EFFECTS = frozenset({"destroy", "privilege", "configuration", "server", "dynamic",
                          "unreadable", "unknown"})
# Kubernetes verbs that reach into or remove workloads.
_K8S_VERBS = frozenset({"exec", "attach", "portforward", "delete", "deletecollection"})
# Kubernetes resources whose every write changes who may do what.
_K8S_RBAC = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings",
                       "serviceaccounts"})
_K8S_WRITES = frozenset({"create", "update", "patch"})
# Programs that act as another user, or on the host's services, disks, users and firewall.
_PROGRAMS = frozenset({
    "sudo", "su", "doas", "pkexec", "runuser", "systemctl", "service", "shutdown",
    "reboot", "halt", "poweroff", "mkfs", "fdisk", "parted", "iptables", "nft",
    "useradd", "userdel", "usermod", "groupadd", "passwd", "chpasswd", "visudo", "crontab",
})
# Subcommands of tools whose other uses are routine.
_SUBCOMMANDS = {
    "kubectl": frozenset({"exec", "delete", "drain", "cordon", "taint", "attach",
                          "port-forward", "replace"}),
    "helm": frozenset({"uninstall", "delete", "rollback"}),
    "terraform": frozenset({"destroy", "apply", "import", "taint"}),
    "docker": frozenset({"rm", "rmi", "kill", "exec", "system"}),
}
_FORCE = frozenset({"--force", "-f", "--force-with-lease", "--mirror", "--delete", "-d"})


def administrative(key: str | None, meaning: Any) -> bool:
    """Whether the exchange whose interpreter (`key`: sql, k8s, llm, mcp, ssh) read `meaning`
    administers: at the response phase of a model, the tool calls it asks the agent
    to make (the history's earlier calls were counted when they were made)."""
    if not isinstance(meaning, dict):
        return False
    if key == "sql":
        return _sql(meaning.get("statements"))
    if key == "k8s":
        verb, resource = meaning.get("verb"), meaning.get("resource")
        return verb in _K8S_VERBS or (resource in _K8S_RBAC and verb in _K8S_WRITES)
    if key == "llm":
        return any(_call(call) for call in _list(meaning.get("tool_calls")))
    if key == "mcp":
        return _call(meaning.get("call"))
    if key == "ssh":  # a command or shell line is read as a tool call's; forwarding too
        return meaning.get("request") == "forward" or _call(meaning)
    return False


def _sql(statements: Any) -> bool:
    return any(isinstance(s, dict) and not _SQL_EFFECTS.isdisjoint(_list(s.get("effects")))
               for s in _list(statements))


def _call(call: Any) -> bool:
    """A tool call's reading (interpret/llm.py `tool_call`): its commands and its SQL; a
    command the shell reader could not read whole (`opaque`: `$(echo sudo) ls`, a script
    from a pipe) counts, since what it runs is known only when it runs."""
    if not isinstance(call, dict):
        return False
    return (_sql(call.get("sql")) or bool(_list(call.get("opaque")))
            or any(command(argv) for argv in _list(call.get("commands"))))


def command(argv: Any) -> bool:
    """Whether one command (its argv, argv[0] a basename) administers."""
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return False
    program = argv[0]
    if program in _PROGRAMS or program.startswith("mkfs."):
        return True
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if program == "git":  # a push that rewrites or deletes what others have
        if "push" not in operands:
            return False
        refspecs = operands[operands.index("push") + 1:]
        return not _FORCE.isdisjoint(argv) or any(r.startswith(("+", ":")) for r in refspecs)
    subcommands = _SUBCOMMANDS.get(program)
    # The subcommand, past an option's value at most (`kubectl -n prod exec ...`).
    return subcommands is not None and any(o in subcommands for o in operands[:2])


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
