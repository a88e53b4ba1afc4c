"""Views of the legacy site: a home page and a page that shows how the path arrives.

Django builds its URLs from the WSGI environ: SCRIPT_NAME is the mount prefix, PATH_INFO
the rest, and reverse() puts SCRIPT_NAME in front. Mounted at "/" the prefix is empty;
mount the site at "/legacy" in gateway.toml and every URL below gains "/legacy".
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join


def home(request: HttpRequest) -> HttpResponse:
    """A plain page linking to this site's views and to the other two apps."""
    links = [
        (reverse("where"), "where am I? (path, path_info, SCRIPT_NAME, reverse())"),
        (reverse("admin:index"), "the Django admin (admin / admin)"),
        # The sibling apps live outside Django's URLconf, so their URLs are written out.
        ("/flask/", "the Flask app (WSGI)"),
        ("/api/docs", "the FastAPI service (ASGI)"),
    ]
    items = format_html_join("\n", '<li><a href="{}">{}</a></li>', links)
    return HttpResponse(format_html("<h1>The legacy Django site</h1>\n<ul>\n{}\n</ul>\n", items))


def where(request: HttpRequest) -> JsonResponse:
    """The request's path as Django sees it, and URLs that reverse() builds from it."""
    return JsonResponse(
        {
            "path": request.path,  # SCRIPT_NAME + PATH_INFO
            "path_info": request.path_info,  # the part after the mount prefix
            "script_name": request.META.get("SCRIPT_NAME", ""),
            "reverse_home": reverse("home"),
            "reverse_where": reverse("where"),
            "reverse_admin": reverse("admin:index"),
            "absolute_uri": request.build_absolute_uri(),
        }
    )
