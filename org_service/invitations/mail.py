"""The invitation mail: plain text and HTML naming the organization and the inviter."""

from __future__ import annotations

from datetime import datetime
from html import escape


def invitation_mail(*, organization: str, inviter: str, role: str, url: str,
                    expires_at: datetime) -> tuple[str, str, str]:
    """Subject, plain text and HTML."""
    until = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    article = "an" if role[:1] in "aeiou" else "a"
    subject = f"{inviter} invited you to join {organization}"
    text = (f"Hello,\n\n{inviter} invited you to join {organization} as {article} {role}.\n\n"
            f"Accept the invitation here:\n{url}\n\n"
            f"The link works until {until}. If you did not expect this invitation, ignore "
            f"this message.\n")
    html = (f"<p>Hello,</p>\n<p>{escape(inviter)} invited you to join "
            f"<strong>{escape(organization)}</strong> as {article} {escape(role)}.</p>\n"
            f'<p><a href="{escape(url, quote=True)}">Accept the invitation</a></p>\n'
            f"<p>The link works until {until}. If you did not expect this invitation, "
            f"ignore this message.</p>\n")
    return subject, text, html
