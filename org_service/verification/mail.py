"""The mails of email verification: the link to a new member's (or a new) address, and the
notice to the old address of an email change."""

from __future__ import annotations

from datetime import datetime
from html import escape


def verification_mail(*, url: str, expires_at: datetime, change: bool
                      ) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a link that proves this address."""
    until = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if change:
        subject = "Confirm your new email address"
        why = ("Someone (hopefully you) asked to make this address the email of their "
               "account. It becomes the email you log in with once you confirm it; using the "
               "link logs out every device.")
    else:
        subject = "Confirm your email address"
        why = "An account was opened with this address. Please confirm it is yours."
    after = "If you did not ask for this, ignore this message: nothing changes."
    text = (f"Hello,\n\n{why}\n\nConfirm it here:\n{url}\n\n"
            f"The link works once, until {until}. {after}\n")
    html = (f"<p>Hello,</p>\n<p>{escape(why)}</p>\n"
            f'<p><a href="{escape(url, quote=True)}">Confirm this address</a></p>\n'
            f"<p>The link works once, until {until}. {escape(after)}</p>\n")
    return subject, text, html


def change_notice(*, new_email: str) -> tuple[str, str, str]:
    """Subject, plain text and HTML of the notice to the address being replaced."""
    subject = "Your account's email is about to change"
    text = (f"Hello,\n\nSomeone logged in to your account asked to change its email to "
            f"{new_email}. Until that address confirms, this one stays the email you log "
            f"in with.\n\nIf this was not you, reset your password now: the change then "
            f"never takes effect.\n")
    html = (f"<p>Hello,</p>\n<p>Someone logged in to your account asked to change its email "
            f"to {escape(new_email)}. Until that address confirms, this one stays the email "
            f"you log in with.</p>\n<p>If this was not you, reset your password now: the "
            f"change then never takes effect.</p>\n")
    return subject, text, html
