from django.core.management.base import BaseCommand, CommandError

from smatch.staff import ROLES, StaffRefused, create_staff


class Command(BaseCommand):
    help = "Create a staff user with a role (operator or analyst) and print a one-time password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))

    def handle(self, *args, username: str, role: str, **options) -> None:
        try:
            user, password = create_staff(username, role)
        except StaffRefused as exc:
            raise CommandError(f"{exc} [{exc.code}]") from exc
        self.stderr.write(f"staff user {user.username!r} created as {role}; log in at /admin/ with this password "
                          "(shown once; change it there):")
        self.stdout.write(password)
