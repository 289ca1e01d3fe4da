"""The interpreter a target gets, by its protocol: built once per process, when the
exchange pipeline starts, so parsers and tables load then and not on a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.config import Sql, Target
from extproc.interpret.k8s_interpreter import Kubernetes
from extproc.interpret.llm_interpreter import Llm
from extproc.interpret.mcp_interpreter import Mcp
from extproc.interpret.sql_interpreter import SqlHttp, WireSql

if TYPE_CHECKING:
    from extproc.interpret.base import Interpreter
    from extproc.interpret.mcp import ToolLister, ToolPins


def interpreter_for(target: Target, pins: ToolPins | None = None,
                    lister: ToolLister | None = None) -> Interpreter | None:
    """The target's interpreter, built once per process (parsers and tables load here);
    `pins` and `lister`: an MCP target's tool pins, and what lists its tools itself."""
    if target.protocol == "sql-http" and target.sql is not None:
        return SqlHttp(target.sql)
    if target.protocol == "k8s" and target.k8s is not None:
        return Kubernetes(target.k8s)
    if target.protocol == "llm":
        return Llm()
    if target.protocol == "mcp" and target.mcp is not None:
        return Mcp(target.mcp, target.name, pins, lister)
    if target.protocol == "postgres":
        return WireSql(Sql())
    if target.protocol == "mysql":
        return WireSql(Sql(dialect="mysql"))
    if target.protocol == "ssh":
        from extproc.interpret.ssh import Ssh

        return Ssh(target)
    return None
