"""Django settings of the example site in a pod: the example's own, and what a pod needs.

Named by DJANGO_SETTINGS_MODULE in deployment.yaml; importable because gateway.toml here
puts this directory on sys.path.

- ALLOWED_HOSTS comes from DJANGO_ALLOWED_HOSTS (comma-separated): requests arrive with
  the Service's name or an Ingress's host, not 127.0.0.1. The probes never reach Django
  (the gateway answers them before routing), so pod IPs need not be listed.
- DEBUG is off: a pod may be reachable from outside, and tracebacks must not be.
- The demo database goes wherever EXAMPLE_DB_PATH says (a writable volume); each replica
  makes its own. A real site points every replica at one database server and runs its
  migrations as a release step (a Job), not at import.
"""

import os

from django_site.mysite.settings import *  # noqa: F403  (the example's settings, then ours)

ALLOWED_HOSTS = [host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host]
DEBUG = False
