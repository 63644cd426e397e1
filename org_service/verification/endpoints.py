from __future__ import annotations

from fastapi import APIRouter, status

from org_service.audit.service import AuditEvent, Auditor
from org_service.deps import CurrentAuditor, CurrentTenant, ServicesDep
from org_service.errors import (
    TENANT_ERRORS,
    Conflict,
    Gone,
    MemberSuspended,
    NotFound,
    TooManyRequests,
    responses,
)
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import TenantContext
from org_service.verification.schemas import (
    EmailVerified,
    VerificationAccepted,
    VerificationResend,
    VerificationSent,
    VerifyEmail,
)

# Public: whoever holds an emailed link (confirm) or knows an email (resend).
router = APIRouter(prefix="/auth", tags=["Email verification"], route_class=StrictJSONRoute)
me_router = APIRouter(tags=["Email verification"], route_class=StrictJSONRoute,
                      responses=responses(*TENANT_ERRORS))


@router.post("/verify-email", response_model=EmailVerified,
             responses=responses(NotFound, Gone, Conflict, MemberSuspended, TooManyRequests))
async def verify_email(body: VerifyEmail, services: ServicesDep, auditor: CurrentAuditor
                       ) -> EmailVerified:
    """Follow an emailed verification link. Its email is verified; an email change's link
    makes its address the member's email and ends every session of the member (log in
    with the new email). Unknown, used or superseded link: 404; expired: 410; the new
    email taken by another account meanwhile: 409; a suspended member: 403. Nothing
    changes on a refusal; dead links count against the client address (429)."""
    event = AuditEvent()
    async with auditor.action("email_verification.confirm", event):
        verified = await services.email_verification.confirm(body.token, auditor.info, event)
    if verified.email_changed:
        await auditor.record("email_change.confirm", "success", admin_id=event.admin_id,
                             organization_id=event.organization_id, target=event.target)
    return verified


@router.post("/verify-email/resend", status_code=status.HTTP_202_ACCEPTED,
             response_model=VerificationAccepted, responses=responses(TooManyRequests))
async def resend_verification(body: VerificationResend, services: ServicesDep,
                              auditor: CurrentAuditor) -> VerificationAccepted:
    """Ask for a new verification link by email (for a member who cannot log in before
    verifying: REQUIRE_VERIFIED_EMAIL). Always 202 with the same body; only an active
    member's unverified email gets a mail, and it kills the previous link. Throttled per
    client address and per email (429 with Retry-After)."""
    return await services.email_verification.resend(str(body.email), auditor)


@me_router.post("/me/email/verify", status_code=status.HTTP_202_ACCEPTED,
                response_model=VerificationSent, responses=responses(Conflict, TooManyRequests))
async def resend_my_verification(tenant: CurrentTenant, services: ServicesDep,
                                 auditor: CurrentAuditor) -> VerificationSent:
    """Send a new verification link: to the address an email change of yours waits on,
    else to your email. The previous link stops working. 409 when your email is verified
    and no change waits; throttled per address and per email (429)."""
    return await services.email_verification.resend_mine(tenant.member, auditor)


async def record_email_change(auditor: Auditor, tenant: TenantContext, new_email: str
                              ) -> None:
    """An email change asked for (it waits for its link): who, from which to which."""
    await auditor.record("email_change.request", "success", admin_id=tenant.member_id,
                         organization_id=tenant.organization_id,
                         target=f"{tenant.member['email']} -> {new_email}")
