from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from api.tokens import api_token_create
from ledger.errors import SettleError


class Command(BaseCommand):
    help = ("Make an API token for one practice with one role (billing or manager). With --created-by the token "
            "acts for that person (a staff user of the practice), with at most their role; without, it is an "
            "integration token with its own user, billing only, which never approves. The token is printed once "
            "and never stored: keep it in the integration's secret store.")

    def add_arguments(self, parser):
        parser.add_argument("--practice", type=int, required=True, help="Practice id.")
        parser.add_argument("--role", choices=ApiToken.Role.values, default=ApiToken.Role.BILLING,
                            help="billing (default) or manager (only with --created-by a manager).")
        parser.add_argument("--name", required=True, help="What the integration is, e.g. ehr-sync (a-z, 0-9, . _ -).")
        parser.add_argument("--created-by", dest="created_by", metavar="USERNAME",
                            help="The person the token acts for: history names them and four eyes counts them.")
        parser.add_argument("--reason", default="API token made by an operator", help="Kept in the token's history.")

    def handle(self, *args, practice, role, name, created_by=None, reason="API token made by an operator",
               **options):
        person = None
        if created_by is not None:
            person = get_user_model().objects.filter(username=created_by).first()
            if person is None:
                raise CommandError(f"no user named {created_by}")
        try:
            token, raw = api_token_create(practice_id=practice, role=role, name=name, created_by=person,
                                          reason=reason)
        except SettleError as exc:
            raise CommandError(exc.message) from None
        acting = (f"acting for {person.get_username()}" if person is not None
                  else f"an integration, acting as its own user {token.user.username} (billing, never approves)")
        self.stderr.write(f"API token #{token.pk} '{token.name}' ({token.role}) for practice {token.practice_id} "
                          f"({token.practice.name}); {acting}. It is shown only now:")
        self.stdout.write(raw)
