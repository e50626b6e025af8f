from django.contrib.postgres.operations import CreateExtension
from django.db import migrations


class Migration(migrations.Migration):
    """pg_stat_statements backs the slow-query views; the server must preload the library."""

    operations = [CreateExtension("pg_stat_statements")]
