#!/usr/bin/env python
"""Django's command-line utility for the example site: `manage.py migrate`, `shell`, ...

Run it from anywhere, e.g. from the repo root: python examples/django_site/manage.py check
"""

import os
import sys
from pathlib import Path


def main() -> None:
    # The project's module paths start at examples/ (as under the gateway, whose
    # pythonpath is examples/), one level above this file.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
