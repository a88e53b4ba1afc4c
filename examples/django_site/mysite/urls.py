"""URLs of the legacy site. Patterns have no mount prefix: Django adds SCRIPT_NAME."""

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("where/", views.where, name="where"),
    path("admin/", admin.site.urls),
]

# The admin's CSS and JavaScript, served by Django itself. staticfiles_urlpatterns()
# adds nothing unless DEBUG is on: a real site serves /static/ from a CDN or a
# static-file server, not through the app.
urlpatterns += staticfiles_urlpatterns()
