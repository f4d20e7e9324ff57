"""Human approvals: the queue of routed decisions and the rules for deciding them.

Every routed decision opens an approval in the decision's own transaction; its id is the
decision's id. Server-side rules, whoever calls (Python, HTTP, the web UI, the CLI):

- the approver's role must cover the action, the reason and the amount (otherwise they may
  escalate the case up the ladder);
- nobody decides a case they proposed, and AI actors never decide routed cases;
- an approval is claimed once: of two approvers at once, one wins and the other gets
  `ApprovalConflict`;
- before its tool call is queued, the case is re-checked under the current pack, on fresh
  facts, against budgets and precedent revocations (`StaleApproval` when it no longer holds);
- every transition is a lineage record with the approver's id, role, note and the time.

Approved tool calls run exactly once through the outbox (`Approvals.run_approved`). The bearer
tokens approvers sign in with are `discretion.api.Tokens`.
"""

from discretion.approvals._exposure import Exposure, ExposureRow
from discretion.approvals._model import Approval, ApprovalStatus
from discretion.approvals._queue import Approvals

__all__ = ["Approval", "ApprovalStatus", "Approvals", "Exposure", "ExposureRow"]
