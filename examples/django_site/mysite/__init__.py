"""The Django project package: settings, URLs, views and the WSGI entry point."""
