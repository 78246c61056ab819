"""Seed the clocks of rule 17 (ClockRule rows for every practice: practice NULL), with a history row
each. Reversible: the reverse removes the seeded rows (by name; refused while a case uses one).
Managers edit the rows in the admin afterwards (with history); docs/adjudication.md says where each
comes from."""

from datetime import date
from decimal import Decimal

from django.db import migrations
from django.utils import timezone

VERIFY = ("Dates and thresholds as known when seeded; the compliance officer should verify them against the "
          "state's current holder instructions and edit this rule in the admin (the change keeps its history).")

PAYER_RETURN = [
    dict(name="Medicare overpayment: report and return within 60 days", payer_type="medicare", days=60,
         suspension_max_days=180, effective_from=date(2025, 1, 1),
         citation="42 U.S.C. 1320a-7k(d); 42 CFR 401.305 (CY2025 Physician Fee Schedule final rule)",
         note="60 days from identification. A timely good-faith investigation suspends the clock for at most 180 "
              "days from identification; when it ends (or at day 180) the 60 days start again from then, so at "
              "most 240 days in all. In effect from 2025-01-01."),
    dict(name="Medicaid overpayment: report and return within 60 days", payer_type="medicaid", days=60,
         suspension_max_days=180, effective_from=date(2025, 1, 1),
         citation="42 U.S.C. 1320a-7k(d); 42 CFR 401.305 (CY2025 Physician Fee Schedule final rule)",
         note="The statute's 60-day rule covers Medicaid overpayments; the investigation suspension of the CY2025 "
              "rule is applied the same way (at most 180 days, then 60 days). Check the state Medicaid agency's "
              "own rules as well."),
    dict(name="Payer overpayment: the practice's policy (default)", payer_type="", days=60,
         citation="No federal rule; the practice's policy",
         note="Commercial and other payers: no federal deadline; many payer contracts and state prompt-pay laws set "
              "their own. The practice's policy is 60 days; add a practice rule to change it."),
]

PATIENT_REFUND = [
    dict(name="Texas: refund a patient's overpayment within 30 days", us_state="TX", days=30,
         citation="Tex. Ins. Code §1661.005",
         note="A physician or provider refunds an overpayment to the patient not later than the 30th day after the "
              "date the overpayment is determined."),
    dict(name="California: notice within 90 days, refund 30 days after", us_state="CA", notice_days=90, days=30,
         election_stops_clock=True, citation="Cal. Bus. & Prof. Code §732",
         note="Notify the patient of the overpayment within 90 days of knowing; refund within 30 days after the "
              "notice unless the patient elects to keep it as a credit (the election stops the refund clock)."),
    dict(name="Florida: refund within 30 days (billed claims, from 2026)", us_state="FL", days=30,
         effective_from=date(2026, 1, 1), billed_claims_only=True, citation="Fla. SB 1808 (2025)",
         note="Overpayments on services billed to an insurer or a government program, determined on or after "
              "2026-01-01: refund within 30 days. Other Florida credits follow the practice's policy."),
    dict(name="Patient refund: the practice's policy (default)", us_state="", days=60,
         citation="The practice's own policy (default)",
         note="States without a statutory patient-refund deadline: the practice's policy, 60 days by default. Add a "
              "practice rule to change it for one practice."),
]


def up(dormancy, cutoff, report, letter=None, threshold=None, min_amount=None):
    row = dict(dormancy_years=dormancy, cutoff_month=cutoff[0], cutoff_day=cutoff[1], report_month=report[0],
               report_day=report[1])
    if letter:
        row.update(letter_month=letter[0], letter_day=letter[1])
    if threshold is not None:
        row["letter_threshold"] = Decimal(threshold)
    if min_amount is not None:
        row["min_amount"] = Decimal(min_amount)
    return row


# state: (name, citation, dates, note)
UNCLAIMED = {
    "TX": ("Texas", "Tex. Prop. Code ch. 72-74", up(3, (3, 1), (7, 1), (5, 1), "250.00"),
           "3 years; presumed abandoned as of 1 March, reported by 1 July; due-diligence letter by 1 May for "
           "property over $250."),
    "CA": ("California", "Cal. Code Civ. Proc. §1500 ff. (§1513.5 notice)", up(3, (6, 30), (11, 1), (5, 1), "49.99"),
           "3 years; as of 30 June, notice report by 1 November; due-diligence notice 6 to 12 months before the "
           "report for $50 or more."),
    "NY": ("New York", "N.Y. Aband. Prop. Law §§1300-1315", up(3, (12, 31), (3, 10), (12, 10), "49.99"),
           "3 years; as of 31 December, reported by 10 March; due-diligence letter 90 to 120 days before the report "
           "for $50 or more."),
    "IL": ("Illinois", "765 ILCS 1026 (Revised Uniform Unclaimed Property Act)", up(3, (6, 30), (11, 1), (9, 1),
                                                                                    "49.99"),
           "3 years; as of 30 June, reported by 1 November; due-diligence letter 60 to 180 days before the report "
           "for $50 or more."),
    "PA": ("Pennsylvania", "72 P.S. §1301.1 ff.", up(3, (12, 31), (4, 15), (2, 14), "49.99"),
           "3 years; as of 31 December, reported by 15 April; due-diligence letter 60 to 120 days before the report "
           "for $50 or more."),
    "MI": ("Michigan", "Mich. Comp. Laws §567.221 ff.", up(3, (3, 31), (7, 1), (5, 1), "49.99", min_amount="25.00"),
           "3 years; as of 31 March, reported by 1 July; due-diligence letter 60 to 120 days before the report for "
           "$50 or more; amounts of $25 or less are not escheated."),
    "FL": ("Florida", "Fla. Stat. ch. 717", up(5, (12, 31), (5, 1), (3, 1), "49.99"),
           "5 years; as of 31 December, reported by 1 May; due-diligence letter 60 to 120 days before the report for "
           "$50 or more."),
    "GA": ("Georgia", "O.C.G.A. §44-12-190 ff.", up(5, (6, 30), (11, 1), (9, 1), "49.99"),
           "5 years; as of 30 June, reported by 1 November; due-diligence letter 60 to 120 days before the report "
           "for $50 or more."),
    "NC": ("North Carolina", "N.C. Gen. Stat. ch. 116B", up(5, (6, 30), (11, 1), (9, 1), "49.99"),
           "5 years; as of 30 June, reported by 1 November; due-diligence letter 60 to 120 days before the report "
           "for $50 or more."),
    "OH": ("Ohio", "Ohio Rev. Code ch. 169", up(5, (6, 30), (11, 1), (9, 1), "49.99"),
           "3 to 5 years by property type (5 for credit balances here); as of 30 June, reported by 1 November; "
           "due-diligence letter at least 60 days before the report for $50 or more."),
}


def rows():
    for row in PAYER_RETURN:
        yield {"kind": "payer_return", **row}
    for row in PATIENT_REFUND:
        yield {"kind": "patient_refund", **row}
    for code, (state, citation, dates, note) in UNCLAIMED.items():
        yield {"kind": "unclaimed_property", "name": f"Unclaimed property: {state}", "us_state": code,
               "citation": citation, "note": f"{note} A letter threshold of 49.99 means $50 or more. {VERIFY}",
               **dates}


def seed(apps, schema_editor):
    ClockRule = apps.get_model("adjudication", "ClockRule")
    History = apps.get_model("adjudication", "HistoricalClockRule")
    now = timezone.now()
    fields = [f.attname for f in ClockRule._meta.concrete_fields]
    for values in rows():
        if ClockRule.objects.filter(practice__isnull=True, name=values["name"]).exists():
            continue
        rule = ClockRule.objects.create(**values)
        History.objects.create(**{name: getattr(rule, name) for name in fields}, history_date=now,
                               history_type="+", history_change_reason="Seeded (migration 0003_clock_rules_seed)")


def unseed(apps, schema_editor):
    ClockRule = apps.get_model("adjudication", "ClockRule")
    History = apps.get_model("adjudication", "HistoricalClockRule")
    names = [values["name"] for values in rows()]
    ids = list(ClockRule.objects.filter(practice__isnull=True, name__in=names).values_list("id", flat=True))
    History.objects.filter(id__in=ids).delete()
    ClockRule.objects.filter(id__in=ids).delete()


class Migration(migrations.Migration):
    dependencies = [("adjudication", "0002_guards")]
    operations = [migrations.RunPython(seed, unseed)]
