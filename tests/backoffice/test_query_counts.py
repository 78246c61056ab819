"""Speed (issue 5, item 9): every back-office list, and the patient page, runs the same number of
queries whether it shows 5 rows or 25."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits import services as credit_services
from credits.models import NightlyRun
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835

pytestmark = pytest.mark.django_db


def add_patients(world, n, start):
    """n patients who owe 10.00 on a settled visit, with 15.00 locked to a pending visit, 20.00
    available, and a refund of 150.00 waiting for a manager."""
    for i in range(start, start + n):
        pat = world.patient(last_name=f"Q{i:03d}", account_number=f"Q-{i:03d}")
        enc, claim = world.visit(pat, date(2026, 1, 1) + timedelta(days=i), number=f"QA-{i}")
        world.remit(claim, pr="10.00", paid="190.00")
        pending, _ = world.visit(pat, date(2026, 3, 1) + timedelta(days=i), number=f"QB-{i}")
        world.pay(pat, "15.00", encounter=pending, channel="cash")
        c = credit_services.manual_credit_add(patient_id=pat.pk, amount="170.00", reason="old", actor=world.clerk)
        credit_services.refund_request(credit_id=c.pk, amount="150.00", actor=world.clerk, reason="asked",
                                       method="check")
        NightlyRun.objects.create(practice=world.practice, triggered_by=world.clerk)
        era = generate_835(specs=[ClaimSpec(f"NOPE-{i}", charge="80.00", paid="50.00")],
                           interchange_control_number=i + 1)
        received = remittance_file_receive(practice_id=world.practice.pk, data=era, filename=f"u{i}.835",
                                      actor=world.clerk)
        remittance_file_post(file_id=received.file.pk, actor=world.clerk)


LISTS = [
    ("credits_patientresponsibility_changelist", {}),
    ("credits_patientresponsibility_changelist", {"credits": "both"}),
    ("credits_patientresponsibility_changelist", {"q": "Q0", "o": "-6"}),
    ("backoffice_lockedcredit_changelist", {}),
    ("backoffice_lockedcredit_changelist", {"dos": "waiting"}),
    ("backoffice_refundapproval_changelist", {}),
    ("remittances_remittanceclaim_changelist", {"waiting": "yes"}),
    ("remittances_remittancefile_changelist", {}),
    ("credits_nightlyrun_changelist", {}),
    ("ledger_patient_changelist", {"credits": "both"}),
    ("credits_refund_changelist", {}),
]


def count(client, name, params):
    client.get(reverse(f"admin:{name}"), params)  # warm the per-process caches (content types)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(f"admin:{name}"), params)
    assert response.status_code == 200, name
    return len(ctx.captured_queries), response


@pytest.mark.parametrize("who", ["clerk", "manager"])
def test_list_pages_run_the_same_queries_for_5_and_25_rows(client, world, who):
    client.force_login(getattr(world, who))
    add_patients(world, 5, 0)
    small = {}
    for name, params in LISTS:
        n, response = count(client, name, params)
        assert response.context["cl"].result_count >= 5, (name, params)
        small[(name, str(params))] = n
    add_patients(world, 20, 5)
    for name, params in LISTS:
        n, response = count(client, name, params)
        assert response.context["cl"].result_count >= 25, (name, params)
        assert n == small[(name, str(params))], (name, params, small[(name, str(params))], n)


def test_patient_page_runs_the_same_queries_for_5_and_25_of_everything(client, world):
    client.force_login(world.clerk)
    pat = world.patient(last_name="Many", account_number="M-1")

    def grow(n, start):
        for i in range(start, start + n):
            enc, claim = world.visit(pat, date(2025, 1, 1) + timedelta(days=i), number=f"MANY-{i}")
            world.remit(claim, pr="10.00", paid="190.00")
            world.pay(pat, "12.00", encounter=enc, channel="cash")
            credit_services.manual_credit_add(patient_id=pat.pk, amount="5.00", reason="old", actor=world.clerk)

    url = reverse("admin:ledger_patient_change", args=[pat.pk])
    grow(5, 0)
    client.get(url)  # warm the per-process caches (content types)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    grow(20, 5)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)
    page = response.context["page"]
    assert len(page.encounters) == 25 and len(page.credits) >= 25 and len(page.payments) == 25
    assert len(large.captured_queries) == len(small.captured_queries), \
        set(q["sql"] for q in large.captured_queries) ^ set(q["sql"] for q in small.captured_queries)

    payment = reverse("admin:ledger_patient_payment", args=[pat.pk])
    client.get(payment)
    with CaptureQueriesContext(connection) as pay:
        assert client.get(payment).status_code == 200
    grow(5, 25)
    with CaptureQueriesContext(connection) as pay_more:
        assert client.get(payment).status_code == 200
    assert len(pay.captured_queries) == len(pay_more.captured_queries)
