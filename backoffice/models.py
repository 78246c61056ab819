"""Models of the admin back-office pages: proxies (no table of their own), second admin lists
over the credits app's tables."""

from credits.models import Credit, Refund


class LockedCredit(Credit):
    """Credits locked to a date of service, waiting on its claim (DOMAIN rules 4 and 5)."""

    class Meta:
        proxy = True
        verbose_name = "locked credit"
        verbose_name_plural = "locked credits"


class RefundApproval(Refund):
    """Refunds above the practice's threshold waiting for a manager (DOMAIN rule 8)."""

    class Meta:
        proxy = True
        verbose_name = "refund awaiting approval"
        verbose_name_plural = "refunds awaiting approval"
