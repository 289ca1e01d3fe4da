"""The approvers' API and page: pending and decided requests, approve and deny."""

from extproc.admin.approvals.api import ApprovalsApi

__all__ = ["ApprovalsApi"]
