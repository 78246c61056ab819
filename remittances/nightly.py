"""The whole nightly run of one practice: step 1 is ours (the practice's 835 files received but not
yet posted), steps 2 and 3 are credits' (release balanced locks, apply usable credits: credits/
nightly.py), all under the run's one lock. The job, the admin's "Run now", the API and
`manage.py run_nightly` call this; `credits.nightly.run_nightly` alone is the application only."""

from credits.nightly import DEFAULT_BATCH, RunResult, nightly_apply
from remittances.posting import remittance_files_post_pending


def nightly_run(*, practice_id: int, dry_run: bool = False, actor=None, reason: str = "Nightly application",
                post_remittances: bool = True, batch_size: int = DEFAULT_BATCH) -> RunResult:
    """Run (or preview) the nightly steps for one practice; see credits.nightly.nightly_apply."""
    def post(user) -> int:
        return remittance_files_post_pending(practice_id=practice_id, actor=user)

    return nightly_apply(practice_id=practice_id, dry_run=dry_run, actor=actor, reason=reason, batch_size=batch_size,
                       before_apply=post if post_remittances else None)
