"""Bulk writes the ORM makes slow on the dispatch path.

Django's `bulk_update` emits one `CASE WHEN pk=... THEN ...` per field with a branch per row, which
PostgreSQL evaluates row by row: quadratic in the batch (seconds for 2,000 profile calls). One
`UPDATE ... FROM (VALUES ...)` joins instead; PostgreSQL and SQLite (3.33+) both accept it.

Such an UPDATE locks its rows in whatever order its plan visits them (the VALUES order for a small
batch, the table's for a big one), so two of them over the same rows could each wait for the other:
the fan-out writing 2,000 PUT answers and a batch of async results for some of those calls did, on a
64,000-session activation (PostgreSQL: "deadlock detected", the chunk's answers lost). Every call
therefore locks its rows in primary-key order first, in one transaction with the UPDATEs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import connections, router, transaction
from django.db.models import Model


def update_from_values(model: type[Model], rows: Sequence[Mapping[str, object]], fields: Sequence[str], *,
                       increment: Sequence[str] = (), batch_size: int = 2000) -> int:
    """Set `fields` of each row (a mapping with "pk" and those fields) in one join per batch.

    Columns in `increment` are raised by one on every updated row. Returns the rows updated.
    """
    if not rows:
        return 0
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta = model._meta
    pk = meta.pk
    columns = [pk, *(meta.get_field(name) for name in fields)]
    cast = connection.vendor == "postgresql"  # VALUES columns are untyped text there otherwise
    placeholder = "(" + ", ".join(
        f"CAST(%s AS {f.cast_db_type(connection)})" if cast else "%s" for f in columns
    ) + ")"
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    if cast:
        source = f"(VALUES {{}}) AS v ({', '.join(qn(f.column) for f in columns)})"
        value = [f"v.{qn(f.column)}" for f in columns]
    else:  # SQLite names VALUES columns column1, column2, ... and takes no column list on the alias
        source = "(VALUES {}) AS v"
        value = [f"v.column{i + 1}" for i in range(len(columns))]
    sets = [f"{qn(f.column)} = {v}" for f, v in zip(columns[1:], value[1:], strict=True)]
    sets += [f"{qn(meta.get_field(name).column)} = {table}.{qn(meta.get_field(name).column)} + 1" for name in increment]
    rows = sorted(rows, key=lambda row: row["pk"])  # batches in key order: the locks are taken in that order
    updated = 0
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            # SQLite has no row locks (nor FOR UPDATE): it writes one transaction at a time anyway.
            list(model._default_manager.using(alias).filter(pk__in=[row["pk"] for row in batch])
                 .order_by("pk").select_for_update().values_list("pk", flat=True))
            params: list[object] = []
            for row in batch:
                params.append(pk.get_db_prep_value(row["pk"], connection))
                params += [f.get_db_prep_save(row[f.name], connection) for f in columns[1:]]
            sql = (
                f"UPDATE {table} SET {', '.join(sets)} FROM {source.format(', '.join([placeholder] * len(batch)))} "
                f"WHERE {table}.{qn(pk.column)} = {value[0]}"
            )
            cursor.execute(sql, params)
            updated += cursor.rowcount
    return updated
