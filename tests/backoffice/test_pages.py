"""The back-office pages (issue 5): each one through the test client, as billing staff or a manager,
checking what the service did (state, history user and reason) and that refusals show on the form."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from credits import services as credit_services
from credits.models import Credit, CreditImport, NightlyRun, Refund, WriteOff
from credits.selectors import patient_responsibility_mismatches
from ledger.models import Encounter, Payment
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.x12.generator import ClaimSpec, generate_835
from tests.backoffice.conftest import messages_of, patient_page

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"admin:{name}", args=args)


# --- patient responsibility and the patient page (items 1 and 3) ---------------------------------------------

def test_patient_responsibility_lists_open_balances_with_credit_totals(client, office, world):
    client.force_login(world.clerk)
    response = client.get(url("credits_patientresponsibility_changelist"))
    rows = {r.patient.account_number: (r.due_now, r.pending_payer, r.available, r.locked)
            for r in response.context["cl"].result_list}
    assert rows == {"A-100": (D("60.00"), 0, D("100.00"), D("0.00"))}  # Ben owes nothing: his DoS waits, PR 0

    def accounts(**params):
        cl = client.get(url("credits_patientresponsibility_changelist"), params).context["cl"]
        return sorted(r.patient.account_number for r in cl.result_list)

    assert accounts(credits="available") == ["A-100"]
    assert accounts(credits="locked") == []
    assert accounts(balance="all", credits="locked") == ["B-200"]
    assert accounts(balance="all", credits="both") == []
    assert accounts(balance="none") == ["B-200"]
    assert accounts(balance="due") == ["A-100"] and accounts(balance="pending") == []
    assert accounts(q="avila") == ["A-100"] and accounts(q="A-100") == ["A-100"] and accounts(q="nobody") == []
    export = client.get(url("credits_patientresponsibility_export"), {"balance": "all"})
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert lines[0].startswith("account_number,last_name") and len(lines) == 3


def test_patient_page_shows_card_sections_and_history(client, office, world):
    client.force_login(world.clerk)
    ana = office["ana"]
    response = client.get(patient_page(ana))
    assert response.status_code == 200
    page = response.context["page"]
    owes = page.owes
    assert (owes.due_now, owes.pending_payer, owes.available, owes.locked_held) == (D("60.00"), 0, D("100.00"), 0)
    html = response.content.decode()
    for text in ("Due now", "Pending the payer", "Available credit", "Locked credit", "Dates of service", "Credits", "Payments",
                 "Refunds", "Write-offs", "History", "Take payment", "03/03/2026", "ANA-1"):
        assert text in html, text
    # a credit links to the payment it came from
    credit = office["ana_credit"]
    assert url("ledger_payment_change", credit.payment_id) in html
    # the history: who, when, why
    whats = {(h.what, h.why) for h in page.history}
    assert ("Credit #%d" % credit.pk, "Payment at front desk") in whats
    assert all(h.who == world.clerk for h in page.history if h.what != "Patient")  # the factory made the patient


# --- payments (item 4, rule 7) -------------------------------------------------------------------------------

def test_payment_screen_preselects_covering_credits_and_charges_only_the_rest(client, office, world):
    ana, credit = office["ana"], office["ana_credit"]
    client.force_login(world.clerk)
    page = client.get(url("ledger_patient_payment", ana.pk))
    form = page.context["form"]
    assert page.context["preselect"] == {credit.pk: D("60.00")}
    assert form.initial["apply_credits"] is True and form.initial["amount"] == D("0.00")
    assert form.initial[f"credit_{credit.pk}"] == D("60.00")

    # staff change the selection: use 45.00 of the credit, charge the 15.00 rest on the card reader
    response = client.post(url("ledger_patient_payment", ana.pk), {
        "dos": [office["ana_dos"].pk], "apply_credits": "on", f"credit_{credit.pk}": "45.00", "amount": "15.00",
        "channel": "card_reader", "card_token": "tok_visa", "reason": "Checkout"})
    assert response.status_code == 302, response.context["form"].errors
    assert "credits applied 45.00, charged 15.00 by card reader" in messages_of(client, response)[0]
    office["ana_dos"].refresh_from_db()
    credit.refresh_from_db()
    assert office["ana_dos"].balance == 0 and credit.on_hand == D("55.00")
    payment = Payment.objects.filter(patient=ana).latest("pk")
    assert (payment.amount, payment.channel, payment.created_by) == (D("15.00"), "card_reader", world.clerk)
    assert credit.history.first().history_user == world.clerk
    assert patient_responsibility_mismatches() == []


def test_payment_without_credits_by_check_needs_its_number(client, office, world):
    ana = office["ana"]
    client.force_login(world.clerk)
    data = {"dos": [office["ana_dos"].pk], "amount": "60.00", "channel": "check", "reason": "Mailed check"}
    response = client.post(url("ledger_patient_payment", ana.pk), data)
    assert response.status_code == 200 and "check_number" in response.context["form"].errors
    response = client.post(url("ledger_patient_payment", ana.pk), {**data, "check_number": "1042"})
    assert response.status_code == 302
    payment = Payment.objects.filter(patient=ana).latest("pk")
    assert (payment.amount, payment.check_number) == (D("60.00"), "1042")


def test_payment_refusals_show_on_the_form_never_a_500(client, office, world):
    ana, credit = office["ana"], office["ana_credit"]
    client.force_login(world.clerk)
    declined = client.post(url("ledger_patient_payment", ana.pk), {
        "dos": [office["ana_dos"].pk], "amount": "60.00", "channel": "card_reader", "card_token": "tok_decline",
        "reason": "Checkout"})
    assert declined.status_code == 200
    assert "card payment refused: the card was declined" in declined.context["form"].errors["card_token"][0]
    too_much = client.post(url("ledger_patient_payment", ana.pk), {
        "dos": [office["ana_dos"].pk], "apply_credits": "on", f"credit_{credit.pk}": "80.00", "amount": "0",
        "channel": "cash", "reason": "Checkout"})
    assert too_much.status_code == 200 and too_much.context["form"].errors["apply_credits"]
    # a locked credit of another DoS cannot be used
    ben = office["ben"]
    locked = office["ben_credit"]
    enc, claim = world.visit(ben, date(2026, 5, 5), number="BEN-2")
    world.remit(claim, pr="10.00", paid="190.00")
    page = client.get(url("ledger_patient_payment", ben.pk))
    assert page.context["form"].credit_rows()[0][2] is False  # shown, not usable
    response = client.post(url("ledger_patient_payment", ben.pk), {
        "dos": [enc.pk], "apply_credits": "on", f"credit_{locked.pk}": "10.00", "amount": "0", "channel": "cash",
        "reason": "Checkout"})
    assert response.status_code == 200 and response.context["form"].errors


def test_payment_held_for_a_pending_dos(client, office, world):
    ben = office["ben"]
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_payment", ben.pk), {
        "hold_for": office["ben_dos"].pk, "amount": "25.00", "channel": "cash", "reason": "Copay"})
    assert response.status_code == 302, response.context["form"].errors
    held = Credit.objects.filter(patient=ben).latest("pk")
    assert (held.source, held.state, held.locked_encounter) == ("held_payment", "locked", office["ben_dos"])


# --- credit actions (item 5) ---------------------------------------------------------------------------------

def test_add_move_remove_unlock_a_credit_with_reasons(client, office, world):
    ana = office["ana"]
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_credit_add", ana.pk), {"amount": "25.00", "encounter": "",
                                                                       "note": "Carried over from old system"})
    assert response.status_code == 302
    c = Credit.objects.filter(patient=ana, source="manual").get()
    assert (c.amount, c.state, c.note) == (D("25.00"), "available", "Carried over from old system")

    response = client.post(url("ledger_patient_credit_move", ana.pk, c.pk),
                           {"target": office["ana_dos"].pk, "reason": "Meant for the March visit"})
    assert response.status_code == 302
    c.refresh_from_db()
    assert (c.state, c.locked_encounter) == ("locked", office["ana_dos"])
    assert c.history.first().history_change_reason == "Meant for the March visit"

    response = client.post(url("ledger_patient_credit_unlock", ana.pk, c.pk), {"reason": "Payer never answers"})
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.state == "available"

    response = client.post(url("ledger_patient_credit_remove", ana.pk, c.pk), {"amount": "5.00", "reason": ""})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    response = client.post(url("ledger_patient_credit_remove", ana.pk, c.pk),
                           {"amount": "5.00", "reason": "Refunded outside the system, check 77"})
    assert response.status_code == 302
    c.refresh_from_db()
    assert (c.on_hand, c.removed_amount) == (D("20.00"), D("5.00"))
    last = c.history.first()
    assert (last.history_user, last.history_change_reason) == (world.clerk, "Refunded outside the system, check 77")
    assert patient_responsibility_mismatches() == []


def test_move_refusal_is_shown_on_the_field(client, office, world):
    ben, locked = office["ben"], office["ben_credit"]
    client.force_login(world.clerk)
    # moving a locked credit to the DoS it is locked to is not offered; posting it anyway shows an error
    response = client.post(url("ledger_patient_credit_move", ben.pk, locked.pk),
                           {"target": office["ben_dos"].pk, "reason": "x"})
    assert response.status_code == 200 and response.context["form"].errors["target"]


def test_refund_back_to_the_card_below_the_threshold_is_issued_at_once(client, office, world):
    ana, credit = office["ana"], office["ana_credit"]
    client.force_login(world.clerk)
    page = client.get(url("ledger_patient_credit_refund", ana.pk, credit.pk))
    assert [m for m, _ in page.context["form"].fields["method"].choices][0] == Refund.Method.ORIGINAL_PAYMENT
    response = client.post(url("ledger_patient_credit_refund", ana.pk, credit.pk), {
        "amount": "30.00", "method": "original_payment", "reference": "", "reason": "Patient asked"})
    assert response.status_code == 302
    r = Refund.objects.get(credit=credit)
    assert (r.state, r.amount, r.reference.startswith("sbx_re_")) == ("issued", D("30.00"), True)
    credit.refresh_from_db()
    assert (credit.on_hand, credit.refunded_amount) == (D("70.00"), D("30.00"))


def test_refund_by_check_of_a_manual_credit_records_the_check_number(client, office, world):
    ana = office["ana"]
    c = credit_services.manual_credit_add(patient_id=ana.pk, amount="50.00", reason="old system", actor=world.clerk)
    client.force_login(world.clerk)
    page = client.get(url("ledger_patient_credit_refund", ana.pk, c.pk))
    methods = [m for m, _ in page.context["form"].fields["method"].choices]
    assert methods == ["check", "ach"]  # example F: no card refund without a system payment
    response = client.post(url("ledger_patient_credit_refund", ana.pk, c.pk), {
        "amount": "50.00", "method": "original_payment", "reference": "", "reason": "asked"})
    assert response.status_code == 200 and response.context["form"].errors["method"]
    response = client.post(url("ledger_patient_credit_refund", ana.pk, c.pk), {
        "amount": "50.00", "method": "check", "reference": "CHK-1001", "reason": "Patient asked"})
    assert response.status_code == 302
    r = Refund.objects.get(credit=c)
    assert (r.state, r.method, r.reference) == ("issued", "check", "CHK-1001")


def test_refunding_a_locked_credit_is_refused_on_the_form(client, office, world):
    ben, locked = office["ben"], office["ben_credit"]
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_credit_refund", ben.pk, locked.pk), {
        "amount": "10.00", "method": "check", "reference": "", "reason": "asked"})
    assert response.status_code == 200
    assert "unlock it before refunding" in str(response.context["form"].non_field_errors())


def test_refund_above_threshold_waits_for_another_manager(client, office, world):
    ana = office["ana"]
    c = credit_services.manual_credit_add(patient_id=ana.pk, amount="500.00", reason="old system", actor=world.manager)
    client.force_login(world.manager)  # a manager asks...
    response = client.post(url("ledger_patient_credit_refund", ana.pk, c.pk), {
        "amount": "250.00", "method": "check", "reference": "", "reason": "Patient moved away"})
    assert "waits for a manager's approval" in messages_of(client, response)[0]
    r = Refund.objects.get(credit=c)
    queue = client.get(url("backoffice_refundapproval_changelist"))
    assert list(queue.context["cl"].result_list) == [r]
    assert "another manager decides" in queue.content.decode()
    # ...and cannot approve their own request
    page = client.get(url("credits_refund_decide", r.pk))
    assert b'name="_approve"' not in page.content
    response = client.post(url("credits_refund_decide", r.pk), {"_approve": "1", "note": ""})
    assert response.status_code == 200 and "cannot approve their own refund" in str(response.context["form"].errors)

    from ledger.models import Membership
    from tests.factories import MembershipFactory, UserFactory

    other = MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                              role=Membership.Role.MANAGER).user
    client.force_login(other)
    response = client.post(url("credits_refund_decide", r.pk), {"_approve": "1", "note": "OK"})
    assert response.status_code == 302 and response.url == url("credits_refund_issue", r.pk)
    response = client.post(url("credits_refund_issue", r.pk), {"reference": ""})
    assert response.status_code == 200 and response.context["form"].errors["reference"]
    response = client.post(url("credits_refund_issue", r.pk), {"reference": "CHK-2002"})
    assert response.status_code == 302
    r.refresh_from_db()
    assert (r.state, r.decided_by, r.issued_by, r.reference) == ("issued", other, other, "CHK-2002")
    assert not client.get(url("backoffice_refundapproval_changelist")).context["cl"].result_list


def test_write_off_and_undo(client, office, world):
    ana, enc = office["ana"], office["ana_dos"]
    client.force_login(world.manager)
    response = client.post(url("ledger_patient_writeoff", ana.pk, enc.pk),
                           {"amount": "60.00", "reason_code": "hardship", "note": "Financial hardship form"})
    assert response.status_code == 302
    enc.refresh_from_db()
    assert enc.balance == 0
    wo = WriteOff.objects.get(encounter=enc)
    response = client.post(url("ledger_patient_writeoff_undo", ana.pk, wo.pk), {"reason": "Form was not signed"})
    assert response.status_code == 302
    wo.refresh_from_db()
    enc.refresh_from_db()
    assert (wo.state, wo.undo_reason, enc.balance) == ("undone", "Form was not signed", D("60.00"))


def test_billing_staff_write_off_beyond_policy_is_refused_on_the_form(client, office, world):
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_writeoff", office["ana"].pk, office["ana_dos"].pk),
                           {"amount": "60.00", "reason_code": "small_balance", "note": "small"})
    assert response.status_code == 200 and "need a manager" in response.context["form"].errors["amount"][0]


def test_apply_and_unlock_a_patients_credits(client, office, world):
    ana, ben = office["ana"], office["ben"]
    client.force_login(world.clerk)
    response = client.post(url("ledger_patient_apply_credits", ana.pk), {"reason": "Patient called"})
    assert "Applied 60.00" in messages_of(client, response)[0]
    response = client.post(url("ledger_patient_unlock_credits", ben.pk), {"reason": "Payer gone"})
    assert messages_of(client, response) == ["Credits unlocked: 1."]
    assert patient_responsibility_mismatches() == []


# --- locked credits (item 2, rule 5) ------------------------------------------------------------------------

def test_locked_credits_list_and_bulk_unlock_with_a_reason(client, office, world):
    locked = office["ben_credit"]
    client.force_login(world.clerk)
    response = client.get(url("backoffice_lockedcredit_changelist"))
    assert list(response.context["cl"].result_list) == [locked]
    html = response.content.decode()
    assert "BEN-1" in html and "04/04/2026" in html and "40.00" in html and "Brook, Ben" in html
    assert client.get(url("backoffice_lockedcredit_changelist"), {"dos": "waiting"}).context["cl"].result_count == 1
    assert client.get(url("backoffice_lockedcredit_changelist"), {"dos": "settled"}).context["cl"].result_count == 0
    assert client.get(url("backoffice_lockedcredit_changelist"), {"q": "BEN-1"}).context["cl"].result_count == 1

    page = client.post(url("backoffice_lockedcredit_changelist"),
                       {"action": "unlock_patients", "_selected_action": [locked.pk]})
    assert page.status_code == 200 and page.templates[0].name == "admin/settle/confirm_action.html"
    done = client.post(url("backoffice_lockedcredit_changelist"),
                       {"action": "unlock_patients", "_selected_action": [locked.pk], "confirm": "yes",
                        "reason": "Payer will never answer"})
    assert done.status_code == 302
    locked.refresh_from_db()
    assert locked.state == "available"
    assert locked.history.first().history_change_reason == "Manual unlock: Payer will never answer"


# --- files: CSV import, 835 upload and the unmatched queue (items 5, 7) ---------------------------------------

def test_credit_csv_import_shows_every_bad_line_then_imports(client, office, world):
    client.force_login(world.clerk)
    bad = b"account_number,amount,note\nA-100,12.50,ok\nNOPE,1.00,x\nA-100,abc,y\nB-200,3.00,\n"
    response = client.post(url("credits_creditimport_upload"), {
        "practice": world.practice.pk, "reason": "Import", "file": SimpleUploadedFile("old.csv", bad)})
    assert response.status_code == 200
    errors = response.context["line_errors"]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5"]
    assert "unknown patient account number 'NOPE'" in errors[0]
    assert not CreditImport.objects.exists()
    good = b"account_number,amount,note,date_of_service\nA-100,12.50,old balance,\nB-200,3.00,old,2026-04-04\n"
    response = client.post(url("credits_creditimport_upload"), {
        "practice": world.practice.pk, "reason": "Import from old system",
        "file": SimpleUploadedFile("old.csv", good)})
    assert response.status_code == 302
    batch = CreditImport.objects.get()
    assert (batch.rows, batch.total) == (2, D("15.50"))
    page = client.get(response.url)
    assert "old balance" in page.content.decode()
    again = client.post(url("credits_creditimport_upload"), {
        "practice": world.practice.pk, "reason": "again", "file": SimpleUploadedFile("old.csv", good)})
    assert again.status_code == 200 and "already imported" in str(again.context["form"].errors)


def test_upload_835_files_shows_each_result_and_posts(client, office, world):
    ana = office["ana"]
    enc, claim = world.visit(ana, date(2026, 6, 6), number="ANA-2")
    era = generate_835(specs=[ClaimSpec("ANA-2", charge="200.00", paid="150.00",
                                        patient_responsibility=[("2", "50.00")])], interchange_control_number=7)
    client.force_login(world.clerk)
    response = client.post(url("remittances_remittancefile_upload"), {
        "practice": world.practice.pk,
        "files": [SimpleUploadedFile("era.835", era), SimpleUploadedFile("again.835", era),
                  SimpleUploadedFile("junk.835", b"ISA*not an 835")]})
    assert response.status_code == 200
    results = {r["filename"]: r["status"] for r in response.context["results"]}
    assert results == {"era.835": "posted", "again.835": "duplicate", "junk.835": "refused"}
    html = response.content.decode()
    assert "posted: 1" in html and "segment" in html
    enc.refresh_from_db()
    assert enc.remittance_pr == D("50.00")
    refused = RemittanceFile.objects.get(filename="junk.835")
    assert client.get(url("remittances_remittancefile_change", refused.pk)).status_code == 200


def test_unmatched_claim_matched_by_hand(client, office, world):
    ana = office["ana"]
    _, claim = world.visit(ana, date(2026, 7, 7), number="ANA-7")
    waiting = office["waiting_claim"]
    client.force_login(world.clerk)
    queue = client.get(url("remittances_remittanceclaim_changelist"), {"waiting": "yes"})
    assert list(queue.context["cl"].result_list) == [waiting]
    assert url("remittances_remittanceclaim_match", waiting.pk) in queue.content.decode()
    page = client.get(url("remittances_remittanceclaim_match", waiting.pk))
    assert page.status_code == 200 and "NOPE-9" in page.content.decode()
    response = client.post(url("remittances_remittanceclaim_match", waiting.pk), {"claim": claim.pk, "reason": ""})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    # the 835 is from another payer, for DOE, JANE on 01/02/2024; the claim is Ana Avila's of 07/07/2026: shown,
    # and refused unless confirmed
    response = client.post(url("remittances_remittanceclaim_match", waiting.pk),
                           {"claim": claim.pk, "reason": "Payer mistyped the claim number"})
    assert response.status_code == 200
    assert [m["field"] for m in response.context["chosen_mismatches"]] == ["payer", "patient", "date_of_service"]
    assert "does not look like this remittance claim" in str(response.context["form"].errors["confirm_mismatch"])
    waiting.refresh_from_db()
    assert waiting.state == RemittanceClaim.State.UNMATCHED
    response = client.post(url("remittances_remittanceclaim_match", waiting.pk),
                           {"claim": claim.pk, "reason": "Payer mistyped the claim number", "confirm_mismatch": "on"})
    assert response.status_code == 302
    waiting.refresh_from_db()
    claim.refresh_from_db()
    assert (waiting.state, waiting.claim, claim.state) == (RemittanceClaim.State.POSTED, claim, "paid")
    assert "Payer mistyped the claim number" in waiting.note and "confirmed by clerk" in waiting.note


# --- nightly runs (item 7) -----------------------------------------------------------------------------------

def test_nightly_preview_writes_nothing_and_run_now_applies(client, office, world):
    client.force_login(world.clerk)
    before = NightlyRun.objects.count()
    page = client.get(url("credits_nightlyrun_preview"), {"practice": world.practice.pk})
    assert page.status_code == 200
    result = page.context["result"]
    assert (result.application_count, result.applied_total) == (1, D("60.00"))
    assert page.context["lines"][0]["patient"] == office["ana"]
    assert NightlyRun.objects.count() == before
    office["ana_dos"].refresh_from_db()
    assert office["ana_dos"].balance == D("60.00")

    response = client.post(url("credits_nightlyrun_run_now"), {"practice": world.practice.pk,
                                                               "reason": "Catch up after the outage"})
    run = NightlyRun.objects.latest("pk")
    assert response.status_code == 302 and response.url == url("credits_nightlyrun_change", run.pk)
    assert (run.status, run.triggered_by, run.application_count) == ("succeeded", world.clerk, 1)
    page = client.get(response.url)
    assert "Avila" in page.content.decode()
    office["ana_dos"].refresh_from_db()
    assert office["ana_dos"].balance == 0
    assert Encounter.objects.get(pk=office["ana_dos"].pk).applications.get().reason == "Catch up after the outage"
