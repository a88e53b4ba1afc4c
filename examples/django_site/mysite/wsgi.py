"""WSGI entry point of the legacy site: `django_site.mysite.wsgi:application`.

Importing this module is all the gateway does to load the site. On a fresh checkout it
also creates the demo database (see `prepare_demo_database`), so that
`gateway serve examples/gateway.toml` works with no other step.
"""

import fcntl
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

# setdefault: an environment that names other settings (tests, production) wins.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.mysite.settings")

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"  # example only, see below


def prepare_demo_database() -> None:
    """Migrate a missing database and add a superuser admin/admin.

    EXAMPLE-ONLY CONVENIENCE. A real deployment runs `manage.py migrate` as a release
    step, before the server starts, and never ships a known password.
    """
    db_path = Path(settings.DATABASES["default"]["NAME"])
    # With workers > 1 every worker imports this module at once: the lock lets the first
    # migrate while the others wait, then find the finished file and skip. The file alone
    # is no signal: SQLite creates it as soon as migrate connects.
    with open(db_path.with_name(db_path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not db_path.exists():
            create_demo_database(db_path)


def create_demo_database(db_path: Path) -> None:
    try:
        call_command("migrate", interactive=False, verbosity=0)
        get_user_model().objects.create_superuser(DEMO_USERNAME, "admin@example.com", DEMO_PASSWORD)
    except BaseException:
        # A half-made database would be skipped on the next start: remove it to retry.
        db_path.unlink(missing_ok=True)
        raise


application = get_wsgi_application()  # runs django.setup(), which the ORM needs below
prepare_demo_database()
