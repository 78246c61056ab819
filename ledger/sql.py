"""What a date of service owes, in SQL: the same two definitions as `encounter_balance()` and
`encounter_open_claim()` in ledger/models.py, for the raw SQL of the nightly run, the audits and
the benchmarks (tests/ledger/test_encounter_balance.py holds the ORM and the SQL equal).

Each is a template: format it with the alias of the encounter row, e.g.
`ENCOUNTER_BALANCE_SQL.format(e="e")`. Migrations keep the SQL they were written with (they are
history); a new trigger migration copies these texts as they are when it is written."""

from ledger.models import Claim

# the open claim states as SQL literals (TextChoices values: lower-case words, nothing to escape)
OPEN_CLAIM_STATES_SQL = "(" + ", ".join(f"'{state}'" for state in Claim.OPEN) + ")"

# the PR balance of a DoS: the remittance PR once known, else the estimate, less the patient money
# applied and what was written off (rule 9)
ENCOUNTER_BALANCE_SQL = "(COALESCE({e}.remittance_pr, {e}.estimated_pr) - {e}.applied_amount - {e}.written_off_amount)"

# a claim on the DoS still waits on a payer: its balance is pending the payer, not due
ENCOUNTER_OPEN_CLAIM_SQL = ("EXISTS (SELECT 1 FROM ledger_claim open_claim WHERE open_claim.encounter_id = {e}.id"
                            f" AND open_claim.state IN {OPEN_CLAIM_STATES_SQL})")

# payable: patient money may be applied to the DoS (no claim waits on a payer)
ENCOUNTER_PAYABLE_SQL = f"NOT {ENCOUNTER_OPEN_CLAIM_SQL}"
