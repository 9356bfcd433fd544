"""FHIR search over the one DynamoDB table: parameters, parsing, matching, index items, plans.

Pure modules (no AWS): ``normalize`` (string/phone/date normalisation), ``parameters`` (search
parameters per resource type and value extraction), ``query`` (query-string parsing, ``matches``),
``indexing`` (the index items a resource version needs, diffing, the patient ``last_event_at`` touch,
query plans), ``views`` (flattened view rows), ``slots`` (the slot view's filters). ``executor`` runs
plans against a boto3 Table; ``listing`` builds the patient list and the views' pages on it.

Write path, per resource change (one TransactWriteItems)::

    new = index_items(ws, type, id, data, entity_id=..., last_updated=..., created_at=..., data_source_id=...)
    old = index_items(<the same for the stored CURRENT>)            # [] on create
    puts, deletes = diff_index_items(old, new)
    for pid in compartment_patient_ids(type, data) (+ the old version's, if it changed):
        ops += compartment_touch(ws, pid, event_time=..., previous=<GetItem touch_key(ws, pid)>,
                                 source=<the Patient's data_source_id if it is the Patient's own write, else KEEP>)

Read path: ``parse_search`` / ``parse_patient_search`` (``QueryError`` → 400/422 naming the
parameter), then ``executor.search_resources`` / ``search_patients``, or
``listing.patient_list_page`` / ``patient_view_page`` / ``resource_view_page`` for the HTTP lists.
The index design is described in ``indexing`` and in ``docs/search.md``.
"""
