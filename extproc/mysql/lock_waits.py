"""Which of a MariaDB server's sessions wait on the agents' locks (exchange/lock_waits.py).

Asked on the target's catalog connection (catalog.py): its role holds PROCESS, which
InnoDB's transaction tables and the process list need, and no session's role does
(`tollgate db grants` grants it). A target without a catalog_role is not asked. MySQL 8
moved the lock waits to performance_schema.data_lock_waits, which this question does
not read: there the question fails, and the front says so once.
"""

from __future__ import annotations

from collections.abc import Sequence

from extproc.exchange.lock_waits import MARK, Waiter, first_word
from extproc.mysql.catalog import Catalog
from extproc.mysql.upstream import UpstreamError

QUESTION = (
    MARK + "SELECT b.trx_mysql_thread_id, r.trx_mysql_thread_id, p.USER, r.trx_query "
    "FROM information_schema.INNODB_LOCK_WAITS w "
    "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
    "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = r.trx_mysql_thread_id "
    "WHERE b.trx_mysql_thread_id IN ({})")


async def waiters(catalog: Catalog | None, holders: Sequence[int]) -> list[Waiter]:
    """The server's sessions waiting on a lock one of `holders` (thread ids) holds;
    UpstreamError when the server refuses the question, CatalogUnavailable when it
    cannot be asked."""
    if catalog is None:
        raise UpstreamError(0, "HY000", "the target has no catalog_role, which the "
                            "question needs (PROCESS)")
    rows, failed = await catalog.rows(QUESTION.format(", ".join(str(int(h)) for h in holders)))
    if failed is not None:
        raise UpstreamError(failed.code, failed.sqlstate, failed.message)
    return [Waiter(int(holder or 0), int(waiter or 0),
                   user.decode("utf-8", "replace") if user else None,
                   first_word(query.decode("utf-8", "replace") if query else None))
            for holder, waiter, user, query in rows]
