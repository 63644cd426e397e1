from __future__ import annotations

from fastapi import APIRouter, Response, status

from org_service.audit.service import AuditEvent
from org_service.deps import CurrentAuditor, ServicesDep
from org_service.errors import Gone, MemberSuspended, NotFound, TooManyRequests, responses
from org_service.recovery.schemas import (
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
)
from org_service.strict_json import StrictJSONRoute

# Public: whoever knows an email (request) or holds an emailed link (confirm).
router = APIRouter(prefix="/auth", tags=["Password reset"], route_class=StrictJSONRoute)


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED,
             response_model=PasswordResetAccepted, responses=responses(TooManyRequests))
async def request_password_reset(body: PasswordResetRequest, services: ServicesDep,
                                 auditor: CurrentAuditor) -> PasswordResetAccepted:
    """Ask for a password reset link by email. Always 202 with the same body, whether or
    not the email has an account (only an active member's email gets a mail, valid
    PASSWORD_RESET_MINUTES; a new request kills the previous link). Requests are counted
    per client address and per email: 429 with Retry-After past either limit."""
    return await services.password_resets.request(str(body.email), auditor)


@router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response,
             responses=responses(NotFound, Gone, MemberSuspended, TooManyRequests))
async def confirm_password_reset(body: PasswordResetConfirm, services: ServicesDep,
                                 auditor: CurrentAuditor) -> Response:
    """Set a new password with the emailed link's token. 204 and no token: every session
    and access token of the member ends (this one's device included), and the member logs
    in with the new password. Unknown, used or superseded link: 404; expired: 410; a
    suspended member: 403. Nothing changes on a refusal. Dead links count against the
    client address as requests do."""
    async with auditor.action("password_reset.complete", AuditEvent()) as event:
        await services.password_resets.confirm(body, auditor.info, event)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
