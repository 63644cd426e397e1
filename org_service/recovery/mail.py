"""The password reset mail: plain text and HTML with the link and its expiry."""

from __future__ import annotations

from datetime import datetime
from html import escape


def reset_mail(*, url: str, expires_at: datetime) -> tuple[str, str, str]:
    """Subject, plain text and HTML."""
    until = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    subject = "Reset your password"
    text = (f"Hello,\n\nSomeone (hopefully you) asked to reset the password of this "
            f"account.\n\nChoose a new password here:\n{url}\n\n"
            f"The link works once, until {until}. Using it logs out every device. If you "
            f"did not ask for this, ignore this message: your password stays as it is.\n")
    html = ("<p>Hello,</p>\n<p>Someone (hopefully you) asked to reset the password of "
            "this account.</p>\n"
            f'<p><a href="{escape(url, quote=True)}">Choose a new password</a></p>\n'
            f"<p>The link works once, until {until}. Using it logs out every device. If "
            f"you did not ask for this, ignore this message: your password stays as it "
            f"is.</p>\n")
    return subject, text, html
