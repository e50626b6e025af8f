import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")

django_application = get_wsgi_application()  # sets Django up: the front's imports need the apps

from core.hit_front import HitFront  # noqa: E402

# Cached GETs are answered by the hit path's front before Django's handler (core/hit_front.py).
application = HitFront(django_application)
