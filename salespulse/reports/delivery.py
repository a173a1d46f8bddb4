"""Where a made report goes: an e-mail (HTML body, CSV attached) and a folder.

Both are blocking (smtplib, file writes): the scheduler runs them in a thread. Failures raise
``ReportDeliveryError`` saying whether trying again may help: a refused connection or a 4xx answer
may pass, a 5xx answer (unknown recipient, bad password) or a certificate that does not verify
will not.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from salespulse.errors import DeliveryError
from salespulse.report_settings import ReportsSettings
from salespulse.reports.files import write_atomically
from salespulse.reports.make import RenderedReport

log = logging.getLogger(__name__)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ReportDeliveryError(DeliveryError):
    """A delivery failed; ``retriable`` says whether trying again may succeed."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def build_message(report: RenderedReport, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    # Names in the subject come from the directory: no line break may reach a header.
    message["Subject"] = _CONTROL.sub(" ", report.subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> ") or None)
    message.set_content(
        f"{report.subject}\n\nThe report is the HTML part of this message; the numbers are "
        f"attached as {report.stem}.csv.\n"
    )
    message.add_alternative(report.html, subtype="html")
    message.add_attachment(
        report.csv.encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=f"{report.stem}.csv",
        params={"charset": "utf-8"},
    )
    return message


class EmailDelivery:
    name = "e-mail"

    def __init__(self, settings: ReportsSettings) -> None:
        self.settings = settings

    def deliver(self, report: RenderedReport, recipients: Sequence[str]) -> list[str]:
        """Send the report; returns the recipients the server accepted."""
        settings = self.settings
        message = build_message(report, settings.mail_from, recipients)
        try:
            refused = self._send(message, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            raise ReportDeliveryError(
                f"SMTP refused every recipient: {_refusals(exc.recipients)}",
                retriable=not permanent,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            raise ReportDeliveryError(
                f"SMTP {settings.smtp_host}:{settings.smtp_port} answered {exc.smtp_code} {text}",
                retriable=not 500 <= exc.smtp_code < 600,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ReportDeliveryError(f"SMTP server: {exc}", retriable=False) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ReportDeliveryError(f"SMTP server certificate: {exc}", retriable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ReportDeliveryError(
                f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc or type(exc).__name__}",
                retriable=True,
            ) from exc
        if refused:
            log.warning("report e-mail not accepted for %s", _refusals(refused))
        return [address for address in recipients if address not in refused]

    def _send(
        self, message: EmailMessage, recipients: Sequence[str]
    ) -> dict[str, tuple[int, bytes]]:
        settings = self.settings
        cafile = str(settings.smtp_cafile) if settings.smtp_cafile else None
        context = ssl.create_default_context(cafile=cafile)
        timeout = settings.smtp_timeout_seconds
        smtp: smtplib.SMTP
        if settings.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_user:
                password = settings.smtp_password
                smtp.login(settings.smtp_user, password.get_secret_value() if password else "")
            return smtp.send_message(message, to_addrs=list(recipients))


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {text.decode(errors='replace')})"
        for address, (code, text) in sorted(refused.items())
    )


class DirectoryDelivery:
    name = "folder"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, report: RenderedReport) -> list[Path]:
        paths = [self.folder / f"{report.stem}.html", self.folder / f"{report.stem}.csv"]
        try:
            write_atomically(paths[0], report.html)
            write_atomically(paths[1], report.csv)
        except OSError as exc:
            raise ReportDeliveryError(
                f"cannot write into {self.folder}: {exc}", retriable=True
            ) from exc
        return paths
