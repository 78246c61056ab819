from django.core.management.base import BaseCommand, CommandError

from ledger.api.tokens import api_token_create
from ledger.api_models import ApiToken
from ledger.errors import SettleError


class Command(BaseCommand):
    help = ("Make an API token for one practice with one role (billing or manager). The token is printed once "
            "and never stored: keep it in the integration's secret store.")

    def add_arguments(self, parser):
        parser.add_argument("--practice", type=int, required=True, help="Practice id.")
        parser.add_argument("--role", choices=ApiToken.Role.values, default=ApiToken.Role.BILLING)
        parser.add_argument("--name", required=True, help="What the integration is, e.g. ehr-sync (a-z, 0-9, . _ -).")

    def handle(self, *args, practice, role, name, **options):
        try:
            token, raw = api_token_create(practice_id=practice, role=role, name=name)
        except SettleError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"API token #{token.pk} '{token.name}' ({token.role}) for practice {token.practice_id} "
                          f"({token.practice.name}); acting user {token.user.username}. It is shown only now:")
        self.stdout.write(raw)
