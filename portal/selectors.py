"""What the portal's pages read (issue 13): always through the signed-in patient, each page a
fixed number of queries whatever the number of visits or credits."""

from adjudication.models import Case
from adjudication.services.notices import NOTICE_KINDS
from ledger.models import Patient


def open_notices(patient: Patient):
    """The patient's overpayment notices still waiting on an answer, or answered "refund" and still
    open (the patient may change to "keep" while no resolution is live): open cases about this
    patient's money whose notice was sent. Newest first; `notices` prefetched."""
    return (Case.objects.filter(patient_id=patient.pk, kind__in=NOTICE_KINDS, state__in=Case.OPEN,
                                notice_sent_on__isnull=False)
            .select_related("credit", "encounter").order_by("-notice_sent_on", "-pk"))
