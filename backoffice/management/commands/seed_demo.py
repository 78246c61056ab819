"""Load the demo data: two practices, their staff, payers, patients, visits, claims in every
state, payments by every channel, credits in every state and from every source, refunds,
write-offs and payer credits. Everything that moves money goes through the services, so the
journal, the history and the processor's book are as real as in production.

Rerunnable: when the demo practice exists it prints the logins and creates nothing. It is not
one transaction (the services are durable transactions of their own); if a run is interrupted,
the next one says so. Financial rows are never deleted, so start again from an empty database.
"""

import io
import os
import random
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db.models import Sum
from django.utils import timezone

from backoffice import demo_adjudication, demo_portal, demo_reports
from credits import services as credit_services
from credits.models import Credit, NightlyRun, Refund
from ledger import services as ledger_services
from ledger.access import system_user
from ledger.models import Claim, JournalEntry, Membership, Patient, Payer, Payment, Practice
from ledger.money import CENT, ZERO
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835

RIVERSIDE = "Riverside Family Medicine"
LAKESIDE = "Lakeside Pediatrics"
PASSWORD = "demo"

# username, first name, last name, practice (None: all, superuser), role
LOGINS = [
    ("admin", "Ada", "Admin", None, None),
    ("manager", "Maria", "Delgado", RIVERSIDE, Membership.Role.MANAGER),
    ("billing", "Ben", "Carter", RIVERSIDE, Membership.Role.BILLING),
    ("lakeside", "Lena", "Park", LAKESIDE, Membership.Role.BILLING),
    ("company", "Carla", "Reyes", f"{RIVERSIDE} and {LAKESIDE}", Membership.Role.MANAGER),  # a billing company
]

STREETS = ["Oak Street", "Maple Avenue", "Cedar Lane", "Elm Street", "Pecan Drive", "Mesquite Trail", "Bay Road",
           "Sunset Boulevard", "Willow Court", "Lakeview Drive"]
CITIES = {"TX": [("Austin", "78704"), ("Round Rock", "78664"), ("San Marcos", "78666")],
          "CA": [("Oakland", "94610"), ("Berkeley", "94705"), ("Alameda", "94501")]}

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen", "Daniel", "Lisa",
    "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Luis", "Ashley", "Steven", "Kimberly", "Andrew",
    "Emily", "Joshua", "Donna", "Kenneth", "Michelle", "Kevin", "Carol", "Brian", "Amanda", "Rosa", "Melissa",
    "Timothy", "Deborah", "Ronald", "Stephanie", "Jason", "Rebecca", "Ana", "Laura", "Diego", "Sharon", "Ryan",
    "Cynthia", "Jacob", "Kathleen",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards",
]
VISITS = [  # description, charge
    ("Office visit, established patient (99213)", "180.00"),
    ("Office visit, established patient, extended (99214)", "250.00"),
    ("Office visit, new patient (99203)", "220.00"),
    ("Annual wellness visit (G0439)", "175.00"),
    ("Preventive visit, 40-64 (99396)", "320.00"),
    ("Lab work: CBC and metabolic panel", "95.00"),
]

RIVERSIDE_PATIENTS = 50
LAKESIDE_PATIENTS = 8


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


class Demo:
    """Builds the demo data. Each scenario method is one patient's story (a DOMAIN.md worked
    example or a state the back-office should show); `filler` adds ordinary patients."""
    def __init__(self, *, today: date):
        self.today = today
        self.rng = random.Random(42)
        names = [(f, ln) for f in FIRST_NAMES for ln in LAST_NAMES]
        self.rng.shuffle(names)
        self.names = iter(names)
        self.claim_seq = 1000
        self.account_seq = {RIVERSIDE: 1000, LAKESIDE: 5000}

    # --- setup ------------------------------------------------------------------------------------

    def users(self):
        User = get_user_model()
        out = {}
        for username, first, last, _, _ in LOGINS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last, "is_staff": True,
                                             "email": f"{username}@demo.settle.test",
                                             "is_superuser": username == "admin"})
            if created:
                user.set_password(PASSWORD)
                user.save(update_fields=["password"])
            out[username] = user
        return out

    def practice(self, name, *, us_state, time_zone, actor):
        # No service creates practices yet (tenant setup is not a money change).
        p = Practice(name=name, us_state=us_state, time_zone=time_zone, auto_apply=True,
                     refund_approval_threshold=Decimal("100.00"), card_refund_window_days=180)
        p._history_user, p._change_reason = actor, "Demo data"
        p.save()
        return p

    def membership(self, user, practice, role, *, actor):
        m = Membership(user=user, practice=practice, role=role)
        m._history_user, m._change_reason = actor, "Demo data"
        m.save()

    def payers(self, practice, specs, actor):
        return {key: ledger_services.payer_create(practice_id=practice.pk, name=name, payer_type=kind,
                                                  payer_identifier=ident, actor=actor, reason="Demo data")
                for key, name, kind, ident in specs}

    def patient(self, practice, prefix, actor, **kwargs):
        first, last = next(self.names)
        self.account_seq[practice.name] += 1
        dob = date(1940, 1, 1) + timedelta(days=self.rng.randint(0, 365 * 80))
        if practice.name == LAKESIDE:  # a pediatric practice
            dob = self.today - timedelta(days=self.rng.randint(200, 365 * 17))
        return ledger_services.patient_create(
            practice_id=practice.pk, account_number=f"{prefix}-{self.account_seq[practice.name]}",
            first_name=first, last_name=last, date_of_birth=dob,
            email=f"{first}.{last}{self.account_seq[practice.name]}@example.com".lower(),
            member_id=f"M{self.rng.randint(10**8, 10**9 - 1)}", actor=actor, reason="Demo data",
            **self.address(practice), **kwargs)

    def address(self, practice) -> dict:
        """A last known address in the practice's state (notices and due-diligence letters go there)."""
        street = f"{self.rng.randint(100, 9899)} {self.rng.choice(STREETS)}"
        city, zip_code = self.rng.choice(CITIES[practice.us_state])
        return {"address_line1": street, "city": city, "us_state": practice.us_state, "postal_code": zip_code}

    # --- the services, with the demo's defaults ---------------------------------------------------------

    def visit(self, patient, days_ago, payer, actor, *, estimated_pr="0.00", visit=None, claim=True):
        description, charge = visit or self.rng.choice(VISITS)
        if Decimal(estimated_pr) > Decimal(charge):
            estimated_pr = charge
        enc = ledger_services.encounter_create(
            patient_id=patient.pk, date_of_service=self.today - timedelta(days=days_ago), charge=charge,
            estimated_pr=estimated_pr, description=description, actor=actor)
        if not claim:
            return enc, None
        self.claim_seq += 1
        c = ledger_services.claim_submit(encounter_id=enc.pk, payer_id=payer.pk, claim_number=f"CLM{self.claim_seq}",
                                         actor=actor)
        return enc, c

    def remit(self, claim, actor, *, outcome="paid", pr=None, paid=None, adjust=None, reason=None):
        """The payer's decision; by default an 80% allowed amount, the rest a contractual adjustment."""
        billed = claim.billed_amount
        pr = None if pr is None else money(pr)
        if paid is None and adjust is None:
            if outcome == "paid":
                allowed = max(money(billed * Decimal("0.80")), pr or ZERO)
                paid, adjust = allowed - (pr or ZERO), billed - allowed
            elif outcome == "denied":
                paid, adjust = ZERO, billed - (pr or ZERO)
            else:
                paid, adjust = ZERO, ZERO
        return credit_services.claim_record_result(
            claim_id=claim.pk, outcome=outcome, paid_amount=str(paid or ZERO), adjustment_amount=str(adjust or ZERO),
            patient_responsibility=None if pr is None else str(pr), actor=actor,
            reason=reason or f"Remittance from {claim.payer.name}",
            payer_claim_number=f"{claim.payer.payer_identifier or 'P'}{claim.claim_number[3:]}")

    def pay(self, patient, amount, channel, actor, *, encounter=None, reason=None):
        return credit_services.payment_record(
            patient_id=patient.pk, amount=str(amount), channel=channel, encounter_id=getattr(encounter, "pk", None),
            card_token="tok_visa" if channel in ("card_reader", "portal") else None,
            check_number=f"{self.rng.randint(1000, 9999)}" if channel == "check" else "",
            note="Demo data", actor=actor,
            reason=reason or ("Copay at the front desk" if encounter is not None else "Payment on account"))

    def nightly(self, patient, *, run=None):
        return credit_services.credits_apply(patient_id=patient.pk, actor=system_user(),
                                                         reason="Nightly application", nightly_run=run)

    # --- Riverside ------------------------------------------------------------------------------------

    def riverside(self, u):
        p = self.practice(RIVERSIDE, us_state="TX", time_zone="America/Chicago", actor=u["admin"])
        self.membership(u["manager"], p, Membership.Role.MANAGER, actor=u["admin"])
        self.membership(u["billing"], p, Membership.Role.BILLING, actor=u["admin"])
        payers = self.payers(p, [
            ("medicare", "Medicare (Novitas JH)", Payer.Type.MEDICARE, "04412"),
            ("medicaid", "Texas Medicaid (TMHP)", Payer.Type.MEDICAID, "TXMCD"),
            ("bcbs", "Blue Cross Blue Shield of Texas", Payer.Type.COMMERCIAL, "84980"),
            ("aetna", "Aetna", Payer.Type.COMMERCIAL, "60054"),
            ("self", "Self-pay", Payer.Type.SELF_PAY, ""),
        ], u["billing"])
        b, m = u["billing"], u["manager"]
        bcbs, aetna, medicare, medicaid = payers["bcbs"], payers["aetna"], payers["medicare"], payers["medicaid"]
        new = lambda **kw: self.patient(p, "RFM", b, **kw)
        ov = ("Office visit, established patient (99213)", "180.00")

        # Copay taken at the desk while the claim is with the payer: held, locked to the DoS.
        pt = new()
        enc, _ = self.visit(pt, 4, bcbs, b, estimated_pr="30.00", visit=ov)
        self.pay(pt, "30.00", "card_reader", b, encounter=enc)

        # Payer answered "pending"; the cash copay waits, locked.
        pt = new()
        enc, claim = self.visit(pt, 21, aetna, b, estimated_pr="40.00",
                                visit=("Office visit, established patient, extended (99214)", "250.00"))
        self.remit(claim, b, outcome="pending", reason="Aetna: claim pended for medical records")
        self.pay(pt, "40.00", "cash", b, encounter=enc)

        # Medicare paid as primary and forwarded the claim to Medicaid; check copay held.
        pt = new()
        enc, claim = self.visit(pt, 45, medicare, b, estimated_pr="20.00",
                                visit=("Preventive visit, 40-64 (99396)", "320.00"))
        self.remit(claim, b, outcome="forwarded", paid="180.00", adjust="60.00",
                   reason="Medicare paid as primary; crossed over to Texas Medicaid")
        self.pay(pt, "20.00", "check", b, encounter=enc)

        # Example A: $50 copay held, PR $20, the nightly applies it, $30 refunded to the card (below the
        # threshold: approved and paid back through the processor at once).
        pt = new()
        enc, claim = self.visit(pt, 70, bcbs, b, estimated_pr="50.00", visit=("Office visit (99213)", "200.00"))
        self.pay(pt, "50.00", "card_reader", b, encounter=enc)
        self.remit(claim, b, pr="20.00", paid="150.00", adjust="30.00")
        self.nightly(pt)
        held = Credit.objects.get(patient=pt, state=Credit.State.AVAILABLE)
        credit_services.refund_request(credit_id=held.pk, amount="30.00", actor=b,
                                       reason="Patient asked for the rest of the copay back")

        # Example B: paid $120 through the portal, a corrected remittance lowers PR to $70: a $50
        # overpayment credit, available; refunded to the portal payment at once.
        pt = new()
        enc, claim_b = self.visit(pt, 95, bcbs, b, visit=("Office visit, new patient (99203)", "240.00"))
        self.remit(claim_b, b, pr="120.00", paid="96.00", adjust="24.00")
        self.pay(pt, "120.00", "portal", b, encounter=enc, reason="Portal payment")
        result = self.remit(claim_b, b, pr="70.00", paid="50.00", adjust="0.00",
                            reason="Corrected remittance from Blue Cross Blue Shield of Texas")
        credit_services.refund_request(credit_id=result.credits_created[0].pk, amount="50.00", actor=b,
                                       reason="Overpayment after the corrected remittance; back to the portal card")

        # Example E, still waiting: PR paid by check, the claim resubmitted; the $80 is locked.
        pt = new()
        enc, claim = self.visit(pt, 120, aetna, b, visit=("Office visit, extended (99214)", "260.00"))
        self.remit(claim, b, pr="80.00", paid="150.00", adjust="30.00")
        self.pay(pt, "80.00", "check", b, encounter=enc)
        credit_services.claim_resubmit(claim_id=claim.pk, actor=b, reason="Wrong modifier on line 1; resubmitted")

        # Example E, decided: the new remittance says PR $25; the nightly applies it, $35 is freed.
        pt = new()
        enc, claim = self.visit(pt, 150, bcbs, b, visit=("Office visit (99213)", "210.00"))
        self.remit(claim, b, pr="60.00", paid="120.00", adjust="30.00")
        self.pay(pt, "60.00", "external", b, encounter=enc, reason="Payment posted by the EHR")
        credit_services.claim_resubmit(claim_id=claim.pk, actor=b, reason="Rendering NPI corrected; resubmitted")
        self.remit(claim, b, pr="25.00", paid="35.00", adjust="0.00", reason="New decision after resubmission")

        # Denied: not covered, the patient owes it all and paid part.
        pt = new()
        enc, claim = self.visit(pt, 80, aetna, b, visit=("Annual wellness visit (G0439)", "175.00"))
        self.remit(claim, b, outcome="denied", pr="175.00", reason="Aetna denied: service not covered (CO-96)")
        self.pay(pt, "60.00", "external", b, encounter=enc, reason="Payment posted by the EHR")

        # Example F: a $200 manual credit, refund by check above the threshold: awaiting a manager.
        pt = new()
        c = credit_services.manual_credit_add(patient_id=pt.pk, amount="200.00", actor=b,
                                              reason="Carried over from the old system (balance at conversion)")
        credit_services.refund_request(credit_id=c.pk, amount="200.00", actor=b,
                                       reason="Patient moved away; refund the old balance by check")

        # Manual credit refunded by check in two parts: $50 approved at once (within the threshold), the
        # check not written yet; then $100 more, over the threshold with the first part (the patient's
        # refunds add up over the approval window): requested, approved by the manager, issued.
        pt = new()
        c = credit_services.manual_credit_add(patient_id=pt.pk, amount="150.00", actor=b,
                                              reason="Carried over from the old system (overpaid 2024 statement)")
        credit_services.refund_request(credit_id=c.pk, amount="50.00", actor=b, method="check",
                                       reason="Refund requested by mail (first part)")
        r = credit_services.refund_request(credit_id=c.pk, amount="100.00", actor=b, method="check",
                                           reason="Refund requested by mail (the rest)")
        credit_services.refund_approve(refund_id=r.pk, actor=m, reason="Checked against the conversion report")
        credit_services.refund_issue(refund_id=r.pk, actor=b, reference="CHK 10452")
        # A large manual credit (above the practice's limit of $1,000): waits for a manager; not credited yet.
        credit_services.manual_credit_add(patient_id=pt.pk, amount="2400.00", actor=b,
                                          reason="Old system: prepaid surgery deposit (to be confirmed)")

        # Purchased flexible credit; a refund request is rejected (the patient keeps the credit).
        pt = new()
        res = ledger_credit_purchase(pt, "120.00", "portal", b)
        r = credit_services.refund_request(credit_id=res.credits[0].pk, amount="120.00", actor=b,
                                           reason="Patient asked to cancel the prepayment")
        credit_services.refund_reject(refund_id=r.pk, actor=m,
                                      reason="Patient called back: keeps the credit for the upcoming visits")

        # Purchased for a chosen DoS: locked to it.
        pt = new()
        enc, _ = self.visit(pt, 2, bcbs, b, visit=("Preventive visit, 40-64 (99396)", "320.00"))
        ledger_credit_purchase(pt, "75.00", "card_reader", b, encounter=enc)

        # Removed: refunded outside settle before the conversion.
        pt = new()
        c = credit_services.manual_credit_add(patient_id=pt.pk, amount="35.00", actor=b,
                                              reason="Carried over from the old system")
        credit_services.credit_remove(credit_id=c.pk, actor=b,
                                      reason="Already refunded by check 2231 from the old system")

        # A deposit that the nightly uses up entirely: applied.
        pt = new()
        credit_services.manual_credit_add(patient_id=pt.pk, amount="45.00", actor=b, reason="Deposit for the visit")
        enc, claim = self.visit(pt, 60, medicare, b, visit=("Office visit, established patient (99213)", "150.00"))
        self.remit(claim, b, pr="45.00", paid="90.00", adjust="15.00")

        # Small balance written off.
        pt = new()
        enc, claim = self.visit(pt, 100, bcbs, b, visit=("Office visit (99213)", "160.00"))
        self.remit(claim, b, pr="57.50", paid="90.00", adjust="12.50")
        self.pay(pt, "50.00", "cash", b, encounter=enc)
        credit_services.writeoff_create(encounter_id=enc.pk, amount="7.50", reason_code="small_balance", actor=b,
                                        reason="Balance under $10 after 90 days")

        # A write-off undone by the manager.
        pt = new()
        enc, claim = self.visit(pt, 110, aetna, b, visit=("Office visit (99212)", "140.00"))
        self.remit(claim, b, pr="30.00", paid="100.00", adjust="10.00")
        self.pay(pt, "25.00", "cash", b, encounter=enc)
        wo = credit_services.writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="small_balance", actor=b,
                                             reason="Small balance")
        credit_services.writeoff_undo(writeoff_id=wo.pk, actor=m,
                                      reason="Patient disputes the visit; keep the balance on the statement")

        # Rule 5: the payer will never answer; staff unlock the held copay.
        pt = new()
        enc, _ = self.visit(pt, 165, aetna, b, estimated_pr="45.00", visit=("Office visit (99213)", "180.00"))
        self.pay(pt, "45.00", "card_reader", b, encounter=enc)
        credit_services.credits_unlock(patient_ids=[pt.pk], actor=b,
                                       reason="Aetna never answered and timely filing has passed")

        # Rule 10: a manual credit moved onto an upcoming DoS.
        pt = new()
        c = credit_services.manual_credit_add(patient_id=pt.pk, amount="30.00", actor=b, reason="Goodwill credit")
        enc, _ = self.visit(pt, 9, medicaid, b, visit=("Office visit (99213)", "180.00"))
        credit_services.credit_move(credit_id=c.pk, to_encounter_id=enc.pk, actor=b,
                                    reason="Patient asked to keep it for this visit")

        # Excluded from the nightly: credit and balance side by side, untouched.
        pt = new()
        ledger_services.patient_set_auto_apply(patient_id=pt.pk, excluded=True, actor=b,
                                               reason="Patient wants a refund rather than credits applied")
        credit_services.manual_credit_add(patient_id=pt.pk, amount="50.00", actor=b, reason="Carried over")
        enc, claim = self.visit(pt, 55, bcbs, b, visit=("Office visit (99213)", "180.00"))
        self.remit(claim, b, pr="30.00")

        # Rule 7: paying at checkout with a credit; only the rest is charged.
        pt = new()
        c = credit_services.manual_credit_add(patient_id=pt.pk, amount="40.00", actor=b,
                                              reason="Goodwill credit for the long wait")
        enc, claim = self.visit(pt, 40, bcbs, b, visit=("Office visit (99213)", "200.00"))
        self.remit(claim, b, pr="90.00", paid="100.00", adjust="10.00")
        credit_services.payment_checkout(patient_id=pt.pk, encounter_ids=[enc.pk], credit_amounts={c.pk: "40.00"},
                                         channel="card_reader", card_token="tok_visa", actor=b,
                                         reason="Checkout with credits")

        # Payer credits: a duplicate payment still open; one above the allowed amount, recouped in a
        # later remittance (PLB WO); one paid as primary by mistake, refunded by check.
        credit_services.payer_credit_open(
            payer_id=bcbs.pk, amount="96.00", reason_code="duplicate_payment", actor=b, claim_id=claim_b.pk,
            payer_claim_number=f"84980{claim_b.claim_number[3:]}", cash_received=True,
            reason="BCBS paid the claim a second time (check 778812)")
        pt = new()
        enc, claim = self.visit(pt, 75, aetna, b, visit=("Office visit, extended (99214)", "230.00"))
        self.remit(claim, b, pr="40.00", paid="170.00", adjust="20.00")
        pc = credit_services.payer_credit_open(payer_id=aetna.pk, amount="40.00", reason_code="above_allowed",
                                               actor=b, claim_id=claim.pk,
                                               payer_claim_number=f"60054{claim.claim_number[3:]}",
                                               reason="Paid above the contracted allowed amount")
        credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount="40.00", actor=b,
                                            reference=f"PLB WO 60054{claim.claim_number[3:]}",
                                            reason="Recouped in the remittance of this week")
        pt = new()
        enc, claim = self.visit(pt, 130, medicare, b, visit=("Annual wellness visit (G0439)", "190.00"))
        self.remit(claim, b, pr="0.00", paid="110.00", adjust="80.00")
        pc = credit_services.payer_credit_open(payer_id=medicare.pk, amount="110.00", reason_code="wrong_primary",
                                               actor=b, claim_id=claim.pk,
                                               payer_claim_number=f"04412{claim.claim_number[3:]}",
                                               reason="Medicare paid as primary; the employer plan was primary")
        credit_services.payer_credit_refund(payer_credit_id=pc.pk, check_number="CHK 10460", actor=m,
                                            reason="Refund to Medicare (MSP)")

        # Credits imported from the old system (CSV): one available, one locked to a DoS, one that
        # the nightly applies to a balance.
        imp_free, imp_locked, imp_applied = new(), new(), new()
        enc_locked, _ = self.visit(imp_locked, 8, medicaid, b, visit=("Office visit (99213)", "180.00"))
        _, claim = self.visit(imp_applied, 50, bcbs, b, visit=("Office visit (99213)", "180.00"))
        self.remit(claim, b, pr="25.00")
        csv_text = (
            "account_number,amount,note,date_of_service\n"
            f"{imp_free.account_number},60.00,Carried over from Kareo,\n"
            f"{imp_locked.account_number},40.00,Carried over from Kareo: copay for this visit,"
            f"{enc_locked.date_of_service:%Y-%m-%d}\n"
            f"{imp_applied.account_number},25.00,Carried over from Kareo,\n"
        )
        credit_services.credit_import_create(practice_id=p.pk, data=csv_text.encode(),
                                           filename="kareo-credit-balances.csv", actor=b)
        # A second file above the practice's limit: it waits, as a whole, for a manager's approval.
        credit_services.credit_import_create(
            practice_id=p.pk, filename="kareo-credit-balances-2.csv", actor=b,
            data=(f"account_number,amount,note\n{imp_free.account_number},1800.00,Carried over from Kareo (second "
                  f"ledger)\n{imp_applied.account_number},35.00,Carried over from Kareo (second ledger)\n").encode())

        # An 835 remittance file from BCBS: one claim posts (PR $35), one waits in the unmatched queue,
        # and the payer adds prompt-pay interest (PLB L6).
        pt = new()
        enc, claim = self.visit(pt, 35, bcbs, b, visit=ov)
        era = generate_835(
            specs=[ClaimSpec(claim.claim_number, charge="180.00", paid="109.00",
                             patient_responsibility=[("2", "35.00")], patient_last=pt.last_name.upper(),
                             patient_first=pt.first_name.upper(), member_id=pt.member_id,
                             service_date=enc.date_of_service),
                   ClaimSpec("OLD-77812", charge="95.00", paid="60.00", patient_responsibility=[("3", "15.00")],
                             service_date=self.today - timedelta(days=200))],
            plb=[("L6", "PROMPT-PAY-INTEREST", "-1.25")],
            payer_name="BLUE CROSS BLUE SHIELD OF TEXAS", payer_id=bcbs.payer_identifier,
            check_number="EFT884201", payment_date=self.today - timedelta(days=3))
        received = remittance_file_receive(practice_id=p.pk, data=era, filename="bcbstx-era-0001.835", actor=b)
        remittance_file_post(file_id=received.file.pk, actor=b)

        # Self-pay visit paid in cash at the desk.
        pt = new()
        enc, _ = self.visit(pt, 30, payers["self"], b, estimated_pr="95.00",
                            visit=("Lab work: CBC and metabolic panel", "95.00"), claim=False)
        self.pay(pt, "95.00", "cash", b, encounter=enc)

        scripted = Patient.objects.filter(practice=p).count()
        for _ in range(RIVERSIDE_PATIENTS - scripted - demo_portal.PATIENTS):  # the portal's patients come last
            self.filler(new(), [bcbs, bcbs, aetna, medicare, medicaid], b)
        return p

    def filler(self, pt, insurers, actor):
        """An ordinary patient: a few visits, copays, remittances, and sometimes a payment later."""
        rng = self.rng
        for _ in range(rng.choice([1, 1, 2, 2, 3])):
            days_ago = rng.randint(3, 180)
            description, charge = rng.choice(VISITS)
            est = rng.choice(["0.00", "20.00", "30.00", "40.00"])
            enc, claim = self.visit(pt, days_ago, rng.choice(insurers), actor, estimated_pr=est,
                                    visit=(description, charge))
            if Decimal(est) > 0 and rng.random() < 0.4:
                self.pay(pt, enc.estimated_pr, rng.choice(["card_reader", "card_reader", "cash"]), actor,
                         encounter=enc)
            roll = rng.random()
            if days_ago < 14:
                continue  # still submitted
            if days_ago < 30 and roll < 0.5:
                self.remit(claim, actor, outcome="pending")
            elif roll < 0.9:
                pr = min(Decimal(rng.choice(["0.00", "15.00", "20.00", "35.00", "48.60", "75.00", "110.00"])),
                         Decimal(charge))
                self.remit(claim, actor, pr=pr)
            else:
                self.remit(claim, actor, outcome="denied", pr="0.00",
                           reason="Denied: duplicate of a claim already processed (CO-18)")
        # What the patient still owes on dates of service the payer has decided and no held copay covers.
        owed = sum((e.bal for e in pt.encounters.due_now().exclude(locked_credits__state=Credit.State.LOCKED)),
                   ZERO)
        if owed > 0 and rng.random() < 0.5:
            amount = owed + (Decimal("20.00") if rng.random() < 0.2 else ZERO)  # some pay a little too much
            self.pay(pt, amount, rng.choice(["portal", "check", "cash", "external"]), actor)

    # --- Lakeside ---------------------------------------------------------------------------------------

    def lakeside(self, u):
        p = self.practice(LAKESIDE, us_state="CA", time_zone="America/Los_Angeles", actor=u["admin"])
        self.membership(u["lakeside"], p, Membership.Role.BILLING, actor=u["admin"])
        a = u["lakeside"]
        payers = self.payers(p, [
            ("medical", "Medi-Cal", Payer.Type.MEDICAID, "MCAL"),
            ("bsc", "Blue Shield of California", Payer.Type.COMMERCIAL, "94036"),
            ("self", "Self-pay", Payer.Type.SELF_PAY, ""),
        ], a)
        wcv = ("Well-child visit (99392)", "210.00")
        sick = ("Sick visit (99213)", "165.00")
        new = lambda: self.patient(p, "LKP", a)

        pt = new()
        enc, claim = self.visit(pt, 30, payers["medical"], a, visit=wcv)
        self.remit(claim, a, pr="0.00")
        pt = new()
        enc, _ = self.visit(pt, 12, payers["bsc"], a, estimated_pr="25.00", visit=sick)
        self.pay(pt, "25.00", "card_reader", a, encounter=enc)
        pt = new()
        enc, claim = self.visit(pt, 60, payers["bsc"], a, visit=wcv)
        self.remit(claim, a, pr="85.00")
        self.pay(pt, "85.00", "portal", a)
        pt = new()
        credit_services.manual_credit_add(patient_id=pt.pk, amount="30.00", actor=a,
                                          reason="Carried over from the old system")
        pt = new()
        ledger_credit_purchase(pt, "50.00", "portal", a)
        pt = new()
        enc, _ = self.visit(pt, 20, payers["self"], a, estimated_pr="120.00", visit=("Sports physical", "120.00"),
                            claim=False)
        self.pay(pt, "120.00", "cash", a, encounter=enc)
        pt = new()
        enc, claim = self.visit(pt, 90, payers["bsc"], a, visit=sick)
        self.remit(claim, a, pr="40.00")
        pt = new()
        enc, claim = self.visit(pt, 45, payers["bsc"], a, estimated_pr="30.00", visit=sick)
        self.pay(pt, "30.00", "card_reader", a, encounter=enc)
        self.remit(claim, a, pr="20.00")
        return p

    # --- the nightly, per patient ---------------------------------------------------------------------------

    def practice_nightly(self, practice):
        """The practice's nightly run (credits/nightly.py), exactly as the scheduler runs it."""
        return nightly_run(practice_id=practice.pk).run

    def build(self):
        u = self.users()
        riverside = self.riverside(u)
        lakeside = self.lakeside(u)
        runs = [self.practice_nightly(riverside), self.practice_nightly(lakeside)]
        demo_adjudication.adjudication(self, riverside, lakeside, u)
        demo_reports.reports(self, riverside, lakeside, u)
        demo_portal.portal(self, riverside, u)
        return runs


def ledger_credit_purchase(patient, amount, channel, actor, *, encounter=None):
    return credit_services.credit_purchase(patient_id=patient.pk, amount=amount, channel=channel,
                                           card_token="tok_visa", encounter_id=getattr(encounter, "pk", None),
                                           actor=actor, reason="Credits purchased" if encounter is None
                                           else "Credits purchased for this visit")


class Command(BaseCommand):
    help = "Load the demo data (two practices, staff logins, patients, claims, payments, credits). Rerunnable."

    def handle(self, *args, **options):
        existing = Practice.objects.filter(name=RIVERSIDE).first()
        if existing is not None:
            self.stdout.write(f"Demo data already loaded ({RIVERSIDE} exists): nothing created.")
            if not NightlyRun.objects.filter(practice__name=LAKESIDE).exists():
                self.stderr.write(self.style.WARNING(
                    "A previous seed_demo run stopped half-way: the demo data is incomplete. Financial rows are "
                    "never deleted; start from an empty database to load it again."))
            self.logins()
            return
        started = time.monotonic()
        runs = Demo(today=timezone.localdate()).build()
        elapsed = time.monotonic() - started
        self.summary(runs, elapsed)
        self.logins()

    def summary(self, runs, elapsed):
        out = io.StringIO()
        out.write(f"Demo data loaded in {elapsed:.1f} s: {Practice.objects.count()} practices, "
                  f"{Patient.objects.count()} patients, {Claim.objects.count()} claims, "
                  f"{Payment.objects.count()} payments, {Credit.objects.count()} credits, "
                  f"{Refund.objects.count()} refunds, {JournalEntry.objects.count()} journal entries.\n")
        for run in runs:
            out.write(f"Nightly application for {run.practice.name}: {run.application_count} applications, "
                      f"{run.applied_total} applied, {run.released_credits} credits released.\n")
        on_hand = Credit.objects.aggregate(s=Sum("on_hand"))["s"] or ZERO
        out.write(f"Credits on hand: {on_hand}.\n")
        self.stdout.write(out.getvalue().rstrip())

    def logins(self):
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        rows = [("username", "password", "role", "sees")]
        for username, _, _, practice, role in LOGINS:
            if practice is None:
                rows.append((username, PASSWORD, "superuser", "every practice"))
            else:
                rows.append((username, PASSWORD, Membership.Role(role).label, practice))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        self.stdout.write(f"\nOpen http://{host}:{port}/admin/ and sign in as:\n")
        for i, row in enumerate(rows):
            self.stdout.write("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if i == 0:
                self.stdout.write("  " + "  ".join("-" * w for w in widths))
        for line in demo_portal.login_lines(f"http://{host}:{port}"):
            self.stdout.write(line)
