"""Settings of the example Django site: a home page, a path demo and the admin.

Module paths start at examples/ ("django_site.mysite..."), because that is the directory
the gateway puts on sys.path (`pythonpath = ["."]` in gateway.toml).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent  # examples/django_site

# Example only: a real site reads the key from its environment and never sets DEBUG.
SECRET_KEY = "example-only-not-secret-8e0f1c3a"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_site.mysite.urls"
WSGI_APPLICATION = "django_site.mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,  # the admin's templates
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # EXAMPLE_DB_PATH lets the test suite keep its database out of the source tree.
        "NAME": Path(os.environ.get("EXAMPLE_DB_PATH", BASE_DIR / "db.sqlite3")),
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Relative, so Django puts the mount prefix (SCRIPT_NAME) in front of it.
STATIC_URL = "static/"
# Where `manage.py collectstatic` gathers the files, for a `static` mount to serve
# (examples/README.md: the site under a prefix).
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
