"""Each of the patient's pages runs a fixed number of queries whatever the number of visits,
credits, payments or statements (issue 13 item 6): counted with 2 of each and with 20."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits.models import Credit, CreditApplication
from credits.services import credit_purchase, credits_apply
from ledger.models import Payment
from portal.services import statement_issue
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db


def build(world, patient, n: int):
    """n visits (every other one waiting on the payer), n payments toward the first visit, n
    credits (bought ahead for a visit: every other one for a waiting visit, the others for the first
    visit, then used for it) and n statements."""
    visits = []
    for i in range(n):
        enc, _ = world.visit(patient, date(2026, 1, 1) + timedelta(days=i), charge="100.00", estimated_pr="50.00",
                             claim=bool(i % 2))
        visits.append(enc)
    for _ in range(n):
        world.pay(patient, "1.00", encounter=visits[0])
    for i in range(n):
        credit_purchase(patient_id=patient.pk, amount="2.00", channel=Payment.Channel.PORTAL, actor=patient.user,
                        card_token="tok_visa", encounter_id=visits[i % 2].pk)
    credits_apply(patient_id=patient.pk, actor=world.clerk, respect_settings=False, reason="apply")  # n/2 to visit 1
    assert CreditApplication.objects.filter(encounter=visits[0], credit__isnull=False).count() == n // 2
    for _ in range(n):
        statement_issue(patient_id=patient.pk, actor=world.clerk)
    assert Credit.objects.filter(patient=patient).count() == n
    return visits


def counts(client, patient, visits) -> dict:
    sign_in(client, patient)
    urls = {"home": reverse("portal:home"), "visit": reverse("portal:visit", args=[visits[0].pk]),
            "credits": reverse("portal:credits"), "payments": reverse("portal:payments"),
            "statements": reverse("portal:statements"), "statement_pdf": reverse("portal:statement_pdf"),
            "receipt": reverse("portal:receipt_pdf", args=[visits[0].payments.first().pk]),
            "issued": reverse("portal:issued_statement_pdf", args=[patient.statements.first().pk])}
    out = {}
    for name, url in urls.items():
        assert client.get(url).status_code == 200, name  # warm: sessions, content types
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200, name
        out[name] = len(ctx.captured_queries)
    return out


def test_every_page_runs_the_same_number_of_queries_for_2_and_for_20(world, portal_patient, other_patient, client):
    few = counts(client, portal_patient, build(world, portal_patient, 2))
    many = counts(client, other_patient, build(world, other_patient, 20))
    assert few == many, (few, many)
    assert max(few.values()) <= 15, few
    print("queries per page:", few)
