"""Tenancy of every back-office page (issue 5, item 8): staff see only their own practices' data
everywhere; another practice's object by id is a 404, a user with no membership gets a 403."""

import pytest
from django.urls import reverse

from credits.models import Refund
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def other_practice_urls(o) -> list[str]:
    zed, credit = o["zed"], o["z_credit"]
    return [
        reverse("admin:ledger_patient_change", args=[zed.pk]),
        reverse("admin:ledger_patient_payment", args=[zed.pk]),
        reverse("admin:ledger_patient_apply_credits", args=[zed.pk]),
        reverse("admin:ledger_patient_unlock_credits", args=[zed.pk]),
        reverse("admin:ledger_patient_credit_add", args=[zed.pk]),
        reverse("admin:ledger_patient_credit_move", args=[zed.pk, credit.pk]),
        reverse("admin:ledger_patient_credit_remove", args=[zed.pk, credit.pk]),
        reverse("admin:ledger_patient_credit_refund", args=[zed.pk, credit.pk]),
        reverse("admin:ledger_patient_credit_unlock", args=[zed.pk, credit.pk]),
        reverse("admin:ledger_patient_writeoff", args=[zed.pk, o["z_enc"].pk]),
        reverse("admin:ledger_patient_writeoff_undo", args=[zed.pk, o["z_wo"].pk]),
        reverse("admin:credits_refund_decide", args=[o["z_refund"].pk]),
        reverse("admin:credits_refund_issue", args=[o["z_refund"].pk]),
        reverse("admin:remittances_remittanceclaim_match", args=[o["z_claim"].pk]),
        reverse("admin:credits_patientresponsibility_change", args=[zed.pk]),
        reverse("admin:backoffice_lockedcredit_change", args=[credit.pk]),
        reverse("admin:backoffice_refundapproval_change", args=[o["z_refund"].pk]),
        reverse("admin:remittances_remittancefile_change", args=[o["z_file"].pk]),
        reverse("admin:credits_nightlyrun_change", args=[o["z_run"].pk]),
    ]


def test_another_practices_objects_by_id_are_not_found(client, office, world):
    client.force_login(world.clerk)
    for url in other_practice_urls(office):
        for method in (client.get, client.post):
            response = method(url, {"reason": "sneaky", "amount": "1.00", "note": "x", "target": "0",
                                    "_approve": "1", "claim": office["waiting_claim"].pk})
            # the stock change pages say "doesn't exist" with a redirect to the index (403 when posted
            # to a read-only one); the back-office pages are 404s
            assert response.status_code in (302, 403, 404), (url, response.status_code)
            if response.status_code == 302:
                assert response.url == reverse("admin:index"), url
            assert b"Zzyzx" not in response.content
    # nothing changed in practice B
    office["z_credit"].refresh_from_db()
    office["z_refund"].refresh_from_db()
    assert (office["z_credit"].on_hand, office["z_refund"].state) == (100, Refund.State.REQUESTED)


def test_a_credit_of_another_patient_under_my_patient_is_not_found(client, office, world):
    """The credit id must belong to the patient of the URL (no mixing of ids)."""
    client.force_login(world.clerk)
    url = reverse("admin:ledger_patient_credit_remove", args=[office["ana"].pk, office["ben_credit"].pk])
    assert client.get(url).status_code == 404


def test_staff_without_membership_get_403_on_every_page(client, office):
    client.force_login(UserFactory(username="stranger"))
    ana = office["ana"]
    for url in [reverse("admin:ledger_patient_payment", args=[ana.pk]),
                reverse("admin:remittances_remittancefile_upload"), reverse("admin:credits_creditimport_upload"),
                reverse("admin:credits_nightlyrun_preview"), reverse("admin:credits_nightlyrun_run_now"),
                reverse("admin:credits_patientresponsibility_changelist"),
                reverse("admin:credits_patientresponsibility_export"),
                reverse("admin:backoffice_lockedcredit_changelist"), reverse("admin:backoffice_refundapproval_changelist")]:
        assert client.get(url).status_code == 403, url


def test_lists_searches_and_exports_show_only_my_practice(client, office, world):
    client.force_login(world.clerk)
    for name in ("credits_patientresponsibility", "backoffice_lockedcredit", "backoffice_refundapproval",
                 "remittances_remittanceclaim", "remittances_remittancefile", "credits_nightlyrun"):
        params = {"balance": "all"} if name == "credits_patientresponsibility" else {}
        response = client.get(reverse(f"admin:{name}_changelist"), params)
        assert response.status_code == 200, name
        assert b"Zzyzx" not in response.content and b"Bayside" not in response.content, name
        assert client.get(reverse(f"admin:{name}_changelist"), {"q": "Zzyzx"}).context["cl"].result_count == 0
    export = client.get(reverse("admin:credits_patientresponsibility_export"), {"balance": "all"})
    body = b"".join(export.streaming_content).decode()
    assert "Avila" in body and "Zzyzx" not in body
    # the selection of an export action cannot reach another practice either
    response = client.post(reverse("admin:credits_patientresponsibility_changelist"),
                           {"action": "export_csv", "_selected_action": [office["zed"].pk, office["ana"].pk]})
    body = b"".join(response.streaming_content).decode()
    assert "Avila" in body and "Zzyzx" not in body


def test_autocomplete_of_the_match_page_is_scoped(client, office, world):
    client.force_login(world.clerk)
    response = client.get(reverse("admin:autocomplete"), {"app_label": "remittances", "model_name": "remittanceclaim",
                                                          "field_name": "claim", "term": "ZZ"})
    assert response.status_code == 200 and response.json()["results"] == []
    response = client.get(reverse("admin:autocomplete"), {"app_label": "remittances", "model_name": "remittanceclaim",
                                                          "field_name": "claim", "term": "ANA"})
    assert [r["text"] for r in response.json()["results"]] == ["Claim ANA-1 (Paid (finalized))"]


def test_bulk_actions_cannot_reach_another_practice(client, office, world):
    client.force_login(world.clerk)
    client.post(reverse("admin:backoffice_refundapproval_changelist"),
                {"action": "reject_refunds", "_selected_action": [office["z_refund"].pk], "confirm": "yes",
                 "reason": "sneaky"})
    office["z_refund"].refresh_from_db()
    assert office["z_refund"].state == Refund.State.REQUESTED


def test_only_managers_approve_and_change_practice_settings(client, office, world):
    refund = Refund.objects.get(pk=office["z_refund"].pk)
    # in practice A: a refund above the threshold asked by the clerk
    from credits import services

    c = services.manual_credit_add(patient_id=office["ana"].pk, amount="500.00", reason="old", actor=world.clerk)
    mine = services.refund_request(credit_id=c.pk, amount="300.00", actor=world.clerk, reason="asked",
                                   method="check")
    client.force_login(world.clerk)
    page = client.get(reverse("admin:credits_refund_decide", args=[mine.pk]))
    assert page.status_code == 200 and b'name="_approve"' not in page.content
    client.post(reverse("admin:credits_refund_decide", args=[mine.pk]), {"_approve": "1", "note": ""})
    mine.refresh_from_db()
    assert mine.state == Refund.State.REQUESTED
    practice_page = client.get(reverse("admin:ledger_practice_change", args=[world.practice.pk]))
    assert not practice_page.context["adminform"].form.fields
    assert refund.state == Refund.State.REQUESTED
