"""PostgreSQL through Django's backend, with the project's availability guard
(``ENGINE = "core.db"``): see core.db.availability."""
