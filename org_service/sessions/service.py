"""Sessions: what a login starts, a refresh continues and a logout ends.

A session is one login's family of refresh tokens (RFC 9700 §4.14). Each refresh spends
the refresh token presented and hands out the next one with a new access token; a spent
token presented again means two parties hold the family, so the whole session ends (with
an audit entry) — except the token spent last, within REFRESH_REUSE_GRACE_SECONDS, which
gets the very pair its first use got: two tabs refreshing at once must not log the user
out.

That pair can be answered again although only hashes are stored because it is derived,
not drawn: the next refresh token is HMAC(key, the token it replaces) (256 bits nobody
can compute without both), and the access token's times and id come from the rotation
stored on the session, so signing it again gives the same bytes.

Every access token names its session (`sid`) and never outlives it. Ending a session notes
it on its member (`ended_sessions`, for one access-token lifetime) before marking the
session itself: the tenant lookup reads the member anyway, so an ended session's access
tokens stop at once without a join or a query more per request, and a crash between the
two steps leaves the session ended for a refresh too (a refresh reads the member). A
member's credential change or suspension moves their token version, which ends every
session they had (`member_version` no longer matches) even if marking them ended never
happens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId

from org_service.audit.service import Auditor, RequestInfo
from org_service.config import Settings
from org_service.db import Document, utcnow
from org_service.errors import SessionEnded, TenantBusy
from org_service.members.repository import ACTIVE as MEMBER_ACTIVE
from org_service.members.repository import MemberRepository
from org_service.organizations.schemas import ACTIVE, RENAMING
from org_service.security import LEEWAY_SECONDS, AccessToken, TokenCodec
from org_service.sessions.repository import SessionRepository

REFRESH_TOKEN_BYTES = 32  # 256 bits
SESSIONS_LISTED_MAX = 100

# Why a session ended (`end_reason`).
LOGOUT, REVOKED, REUSED, DISPLACED = "logout", "revoked", "refresh_token_reuse", "displaced"
SUSPENDED, REMOVED, CREDENTIALS, DELETED = ("member_suspended", "member_removed",
                                            "credentials_changed", "organization_deleted")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """What a login or a refresh answers."""

    session_id: str
    access: AccessToken
    refresh_token: str


def session_has_ended(member: Document, session_id: ObjectId | None) -> bool:
    """Whether the member's document notes the session as ended (the tenant lookup's check:
    an entry outlives every access token of its session)."""
    return any(entry["id"] == session_id for entry in member.get("ended_sessions") or ())


def _is_live(session: Document, now: datetime) -> bool:
    return (session.get("ended_at") is None and session["expires_at"] > now
            and session["idle_expires_at"] > now)


class SessionService:
    def __init__(self, sessions: SessionRepository, members: MemberRepository,
                 tokens: TokenCodec, rotation_key: bytes, settings: Settings) -> None:
        self.sessions = sessions
        self.members = members
        self.tokens = tokens
        self._rotation_key = rotation_key
        self.max_age = timedelta(days=settings.SESSION_MAX_DAYS)
        self.idle = timedelta(days=settings.SESSION_IDLE_DAYS)
        self.grace = timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS)
        self.per_member = settings.SESSIONS_PER_MEMBER
        # How long an ended session stays noted on its member: its last access token's
        # lifetime, the decoder's leeway, and a minute for a refresh that was under way.
        self.noted_for = tokens.expire + timedelta(seconds=LEEWAY_SECONDS + 60)

    def successor(self, refresh_token: str) -> str:
        """The refresh token that replaces `refresh_token`."""
        digest = hmac.new(self._rotation_key, refresh_token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def start(self, member: Document, organization: Document, info: RequestInfo
                    ) -> IssuedSession:
        """A new session for a member whose identity was just proven."""
        now = utcnow()
        expires = now + self.max_age
        refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        session: Document = {
            "_id": ObjectId(),
            "member_id": member["_id"],
            "organization_id": organization["_id"],
            # The member's token version at login: a credential change or a suspension
            # moves it, and every session of before is over.
            "member_version": member["token_version"],
            "generation": 0,
            # The login: when the password was checked (the tokens' `auth_time`).
            "created_at": now,
            # The latest login or rotation: the current access token's `iat`.
            "last_used_at": now,
            "expires_at": expires,
            "idle_expires_at": min(now + self.idle, expires),
            "client_address": info.client_address,
            "user_agent": info.user_agent,
            "ended_at": None,
            "end_reason": None,
        }
        # The token first: a crash before the session leaves a token that opens nothing.
        await self.sessions.add_token(token_hash(refresh_token), session_id=session["_id"],
                                      generation=0, expires_at=expires)
        await self.sessions.insert(session)
        displaced = await self.sessions.oldest_beyond(member["_id"], self.per_member)
        if displaced:
            await self._end(member["_id"], displaced, DISPLACED)
        return self._issue(session, member, refresh_token)

    async def _end(self, member_id: ObjectId, session_ids: list[ObjectId], reason: str
                   ) -> int:
        """End these sessions of the member: noted on the member first (their access tokens
        stop), then marked (their refresh tokens stop); how many were live."""
        now = utcnow()
        await self.members.sessions_ended(member_id, session_ids, until=now + self.noted_for)
        return await self.sessions.end({"_id": {"$in": session_ids}, "member_id": member_id},
                                       reason=reason, at=now)

    def _issue(self, session: Document, member: Document, refresh_token: str
               ) -> IssuedSession:
        access = self.tokens.issue(
            admin_id=str(member["_id"]), organization_id=str(session["organization_id"]),
            version=session["member_version"], session_id=str(session["_id"]),
            role=member["role"], auth_time=session["created_at"],
            issued_at=session["last_used_at"], not_after=session["expires_at"],
            token_id=token_hash(refresh_token)[:32])
        return IssuedSession(str(session["_id"]), access, refresh_token)

    async def refresh(self, refresh_token: str, auditor: Auditor) -> IssuedSession:
        known = await self.sessions.token(token_hash(refresh_token))
        session = await self.sessions.get(known["session_id"]) if known else None
        if known is None or session is None:
            raise SessionEnded("Unknown refresh token; log in again")
        now = utcnow()
        if not _is_live(session, now):
            raise SessionEnded()
        member = await self._member_of(session, now)
        successor = self.successor(refresh_token)
        if known["generation"] == session["generation"]:
            await self.sessions.add_token(token_hash(successor), session_id=session["_id"],
                                          generation=session["generation"] + 1,
                                          expires_at=session["expires_at"])
            rotated = await self.sessions.rotate(session, {
                "last_used_at": now,
                "idle_expires_at": min(now + self.idle, session["expires_at"]),
                "client_address": auditor.info.client_address,
                "user_agent": auditor.info.user_agent,
            })
            if rotated is not None:
                return self._issue(rotated, member, successor)
            # Another refresh with this token won the compare-and-set a moment ago, or the
            # session ended meanwhile (a logout is no reuse).
            session = await self.sessions.get(session["_id"]) or session
            if not _is_live(session, now):
                raise SessionEnded()
        if (known["generation"] == session["generation"] - 1
                and now - session["last_used_at"] <= self.grace):
            return self._issue(session, member, successor)
        # A spent token, or the last one past its grace: someone else holds the family.
        await self._end(session["member_id"], [session["_id"]], REUSED)
        await auditor.record("session.refresh_reuse", "denied", target=str(session["_id"]),
                             reason="session_ended", admin_id=session["member_id"],
                             organization_id=session["organization_id"])
        raise SessionEnded("This refresh token was already used: the session has been ended "
                           "for safety; log in again")

    async def _member_of(self, session: Document, now: datetime) -> Document:
        """The session's member as the database says now, if the session may go on."""
        found = await self.members.with_organization(session["member_id"])
        member = found.member if found else None
        organization = found.organization if found else None
        if organization is not None and organization["state"] == RENAMING:
            raise TenantBusy(str(organization["_id"]))
        reason = (REMOVED if member is None
                  else SUSPENDED if member.get("state", MEMBER_ACTIVE) != MEMBER_ACTIVE
                  else CREDENTIALS if member.get("token_version") != session["member_version"]
                  else REVOKED if session_has_ended(member, session["_id"])
                  else DELETED if organization is None or organization["state"] != ACTIVE
                  else None)
        if reason is not None or member is None:
            # Marked now if whatever ended it did not get that far.
            await self.sessions.end({"_id": session["_id"]}, reason=reason or REMOVED, at=now)
            raise SessionEnded()
        return member

    # -- listing and ending ----------------------------------------------------------------

    async def live_of(self, member: Document) -> list[Document]:
        return await self.sessions.live_of(
            member["_id"], member_version=member["token_version"], now=utcnow(),
            limit=SESSIONS_LISTED_MAX)

    async def end(self, session_id: ObjectId, member_id: ObjectId, reason: str) -> bool:
        """End one live session of this member; whether there was one."""
        session = await self.sessions.get(session_id)
        if (session is None or session["member_id"] != member_id
                or not _is_live(session, utcnow())):
            return False
        return await self._end(member_id, [session_id], reason) > 0

    async def end_member(self, member_id: ObjectId, reason: str) -> int:
        """Mark every session of a member ended, once their token version has moved (which
        is what ends them: this is the record of it)."""
        return await self.sessions.end({"member_id": member_id}, reason=reason, at=utcnow())

    async def end_organization(self, organization_id: ObjectId) -> int:
        return await self.sessions.end({"organization_id": organization_id}, reason=DELETED,
                                       at=utcnow())
