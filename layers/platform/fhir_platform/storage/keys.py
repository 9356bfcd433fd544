"""Key design of the platform's one DynamoDB table (``DataTable``: ``PK``/``SK`` strings, one sparse GSI, ``TypeIndex``).

Every request is served by GetItem / Query / BatchGetItem on these keys; nothing scans. Tenancy is
part of every key: all items of a workspace live under partition keys that start ``WS#{ws}``
(except the two global lookup families, which hold only a workspace id to check against).

==========================  =====================================  ==============================
item family                 PK                                     SK
==========================  =====================================  ==============================
workspace                   ``WS#{ws}``                            ``META``
workspace slug claim        ``SLUG#{slug}``                        ``SLUG``
workspace list (admin)      ``WSLIST``                             ``{created_at}#{ws}``
API key (metadata)          ``WS#{ws}``                            ``KEY#{key_id}``
API key lookup by hash      ``KEYHASH#{sha256(key)}``              ``KEYHASH``
counters (10 shards)        ``WS#{ws}#STATS``                      ``SHARD#{n}``
resource, current version   ``WS#{ws}#R#{type}#{id}``              ``CURRENT``
resource event (version n)  ``WS#{ws}#R#{type}#{id}``              ``V#{n:012d}``
world-model parameters      ``WS#{ws}``                            ``WORLD#PARAMS``
Patient keys have presence  ``WS#{ws}``                            ``WORLD#PATIENT_KEYS``
world-model entity          ``WS#{ws}#E#{entity_id}``              ``META``
entity link (member)        ``WS#{ws}#E#{entity_id}``              ``LINK#{type}#{id}``
entity history event        ``WS#{ws}#E#{entity_id}``              ``EV#{at}#{event_id}``
entity pair never proposed  ``WS#{ws}#E#{entity_id}``              ``NOT#{other_entity_id}``
anchor alias                ``WS#{ws}#E#{anchor_id}``              ``ALIAS`` (only when ≠ anchor)
blocking key member         ``WS#{ws}#BK#{entity_type}#{key}``     ``{type}#{id}``
blocking key in use         ``WS#{ws}#BKP#{entity_type}#{key}``    ``KEY`` (see docs/entities.md)
match candidate             ``WS#{ws}#CAND``                       ``ID#{candidate_id}``
candidate list by status    ``WS#{ws}#CAND#{status}``              ``{created_at}#{candidate_id}``
candidate counters          ``WS#{ws}#CAND#COUNT``                 ``COUNT``
search index entries        ``WS#{ws}#IX#...``                     (see ``fhir_platform.search``)
import jobs                 ``WS#{ws}#JOB#{job_id}``               ``META`` (see ``fhir_platform.imports``)
data source                 ``WS#{ws}``                            ``DS#{ds}``
data source due entry       ``DUE#{shard}``                        ``{due_at}#{ws}#{ds}``
sync state (per type)       ``WS#{ws}#DS#{ds}``                    ``SYNC#{type}``
sync daily counters         ``WS#{ws}#DS#{ds}``                    ``DAY#{yyyy-mm-dd}`` / ``TOTAL``
sync failure log            ``WS#{ws}#DS#{ds}#FAILLOG``            ``{created_at}#{event_id}``
sync failure                ``WS#{ws}#SYNCFAIL``                   ``{type}#{id}#{ds}#{direction}``
sync failure by id          ``WS#{ws}#SYNCFAIL#ID#{id}``           ``{type}#{ds}#{direction}``
sync failure counters       ``WS#{ws}#SYNCFAIL#COUNT``             ``ALL`` / ``T#{type}``
EHR link of a resource      ``WS#{ws}#R#{type}#{id}``              ``EHR#{ds}``
EHR id → platform id        ``WS#{ws}#DS#{ds}#EHRID#{type}#{eid}`` ``LINK`` (only when they differ)
outbound marker             ``WS#{ws}#R#{type}#{id}``              ``OUT#{n:012d}#{ds}``
==========================  =====================================  ==============================

The connector's items are documented with their access patterns in ``storage/data_sources.py`` and
``storage/sync.py``. The due entries are the second global family besides the key lookups: they
hold only ids, and the scheduler reads just the entries that are due (``SK <= now``).

Global secondary index ``TypeIndex`` (``TPK``/``TSK``, KEYS_ONLY, sparse; eventually consistent):

==========================  =====================================  ==============================
on item                     TPK                                    TSK
==========================  =====================================  ==============================
resource event              ``WS#{ws}#TH#{type}#{shard}``          ``{at}#{id}#{n:012d}``
resource, current (live)    ``WS#{ws}#ID#{type}#{shard}``          ``{id}``
==========================  =====================================  ==============================

The first serves FHIR ``GET {type}/_history`` (each event's entry in its type's history), the second
``_sort=_id`` (every live resource of a type in id order): attributes on items the write path
writes anyway, so neither costs a transaction item of its own (see docs/write-path.md).

Access patterns:
- authorizer: GetItem ``KEYHASH#..`` (1 call);
- read a resource: GetItem ``CURRENT`` (1 call);
- history page at ``offset``/``limit``: GetItem ``CURRENT`` for the current version ``v``, then one
  Query ``SK BETWEEN V#{v-offset-limit+1} AND V#{v-offset}`` newest first — versions are dense, so
  the page is addressed directly and the cost does not depend on the history's length;
- write: one TransactWriteItems (current + event + index entries + counter shard [+ entity]),
  conditioned on the current version, so concurrent writers cannot both win;
- status: Query ``WS#{ws}#STATS`` (10 items) + GetItem workspace;
- API key list: Query ``WS#{ws}`` ``begins_with(SK, "KEY#")``.

Instants in sort keys (``{created_at}`` here and in the import job list) are the write clock's ISO
strings with milliseconds (``2025-01-01T00:00:00.123Z``, fixed width), so string order is time
order within one second too; the search index's instants use the same format
(:func:`fhir_platform.search.normalize.format_instant`).

Counters are sharded so a bulk import does not make one item hot nor make concurrent transactions
conflict on it; readers add the shards up.
"""

from __future__ import annotations

COUNTER_SHARDS = 10
VERSION_WIDTH = 12


def workspace_pk(ws: str) -> str:
    return f"WS#{ws}"


WORKSPACE_SK = "META"
WORKSPACE_LIST_PK = "WSLIST"


def slug_pk(slug: str) -> str:
    return f"SLUG#{slug}"


SLUG_SK = "SLUG"


def api_key_sk(key_id: str) -> str:
    return f"KEY#{key_id}"


API_KEY_SK_PREFIX = "KEY#"


def key_hash_pk(key_hash: str) -> str:
    return f"KEYHASH#{key_hash}"


KEY_HASH_SK = "KEYHASH"


def stats_pk(ws: str) -> str:
    return f"WS#{ws}#STATS"


def stats_sk(shard: int) -> str:
    return f"SHARD#{shard}"


def resource_pk(ws: str, resource_type: str, resource_id: str) -> str:
    return f"WS#{ws}#R#{resource_type}#{resource_id}"


CURRENT_SK = "CURRENT"


VERSION_SK_PREFIX = "V#"


def version_sk(version: int) -> str:
    return f"V#{version:0{VERSION_WIDTH}d}"


def entity_pk(ws: str, entity_id: str) -> str:
    return f"WS#{ws}#E#{entity_id}"


ENTITY_SK = "META"
WORLD_PARAMS_SK = "WORLD#PARAMS"  # under ``WS#{ws}``: the workspace's estimated world-model parameters
# under ``WS#{ws}``, written with the workspace: every Patient blocking key of the workspace has a
# presence item (``BKP``), so its Patients Query only keys in use (docs/entities.md)
PATIENT_KEYS_SK = "WORLD#PATIENT_KEYS"
ALIAS_SK = "ALIAS"


def entity_link_sk(resource_type: str, resource_id: str) -> str:
    """A resource's membership of an entity (confidence, method, evidence, pinned)."""
    return f"LINK#{resource_type}#{resource_id}"


ENTITY_LINK_SK_PREFIX = "LINK#"


def entity_event_sk(at: str, event_id: str) -> str:
    return f"EV#{at}#{event_id}"


ENTITY_EVENT_SK_PREFIX = "EV#"


def entity_not_sk(other_entity_id: str) -> str:
    """A pair a reviewer rejected or a split pinned apart: never linked or proposed again."""
    return f"NOT#{other_entity_id}"


ENTITY_NOT_SK_PREFIX = "NOT#"


def blocking_pk(ws: str, entity_type: str, key: str) -> str:
    return f"WS#{ws}#BK#{entity_type}#{key}"


BLOCKING_PRESENCE_SK = "KEY"


def blocking_presence_pk(ws: str, entity_type: str, key: str) -> str:
    """A directory key that has (or had) members: read by key in a BatchGetItem, so a key never
    used costs no Query (docs/entities.md, "Directory keys")."""
    return f"WS#{ws}#BKP#{entity_type}#{key}"


def blocking_sk(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}#{resource_id}"


def candidate_pk(ws: str) -> str:
    return f"WS#{ws}#CAND"


def candidate_sk(candidate_id: str) -> str:
    return f"ID#{candidate_id}"


def candidate_status_pk(ws: str, status: str) -> str:
    return f"WS#{ws}#CAND#{status}"


def candidate_count_pk(ws: str) -> str:
    return f"WS#{ws}#CAND#COUNT"


CANDIDATE_COUNT_SK = "COUNT"


def data_source_sk(ds: str) -> str:
    return f"DS#{ds}"


DATA_SOURCE_SK_PREFIX = "DS#"
DUE_SHARDS = 4


def due_pk(shard: int) -> str:
    return f"DUE#{shard}"


def data_source_pk(ws: str, ds: str) -> str:
    return f"WS#{ws}#DS#{ds}"


def sync_state_sk(resource_type: str) -> str:
    return f"SYNC#{resource_type}"


SYNC_STATE_SK_PREFIX = "SYNC#"


def sync_day_sk(day: str) -> str:
    return f"DAY#{day}"


SYNC_TOTAL_SK = "TOTAL"


def failure_log_pk(ws: str, ds: str) -> str:
    return f"WS#{ws}#DS#{ds}#FAILLOG"


def sync_failure_pk(ws: str) -> str:
    return f"WS#{ws}#SYNCFAIL"


def sync_failure_by_id_pk(ws: str, resource_id: str) -> str:
    return f"WS#{ws}#SYNCFAIL#ID#{resource_id}"


def sync_failure_count_pk(ws: str) -> str:
    return f"WS#{ws}#SYNCFAIL#COUNT"


def ehr_link_sk(ds: str) -> str:
    """The resource's EHR id and last seen EHR version at source ``ds`` (in the resource's partition)."""
    return f"EHR#{ds}"


def ehr_id_pk(ws: str, ds: str, resource_type: str, ehr_id: str) -> str:
    """Reverse link: the platform id of an EHR resource whose id differs (created by outbound POST)."""
    return f"WS#{ws}#DS#{ds}#EHRID#{resource_type}#{ehr_id}"


EHR_ID_SK = "LINK"


def outbound_sk(version: int, ds: str) -> str:
    """Idempotency marker of writing version ``version`` of a resource to source ``ds``."""
    return f"OUT#{version:0{VERSION_WIDTH}d}#{ds}"


TYPE_HISTORY_SHARDS = 8
# The table's one global secondary index (template.yaml ``DataTable``; KEYS_ONLY, sparse): ``TPK`` /
# ``TSK``, set on event items (a type's history in time order) and on live ``CURRENT`` items (a
# type's resources in id order, FHIR ``_sort=_id``). Eventually consistent, as every GSI.
TYPE_INDEX = "TypeIndex"
TYPE_INDEX_PK, TYPE_INDEX_SK = "TPK", "TSK"


def _shard(resource_id: str) -> int:
    import zlib

    return zlib.crc32(resource_id.encode()) % TYPE_HISTORY_SHARDS


def type_history_key(ws: str, resource_type: str, resource_id: str, version: int, at: str) -> dict[str, str]:
    """The ``TypeIndex`` attributes of one event (FHIR ``GET {type}/_history``), set on the event
    item itself (append-only, never changed or deleted; a delete keeps it, as it keeps the events):
    ``TPK = WS#{ws}#TH#{type}#{shard}`` (8 shards by ``crc32(id)``, as the search index's ordered
    families) / ``TSK = {at}#{id}#{version}`` — ``at`` the event's fixed-width UTC instant, so a
    newest-first Query of the 8 shards merged lists the type's changes in time order."""
    return {
        TYPE_INDEX_PK: f"{type_history_pk(ws, resource_type)}#{_shard(resource_id)}",
        TYPE_INDEX_SK: f"{at}#{resource_id}#{version:0{VERSION_WIDTH}d}",
    }


def type_history_pk(ws: str, resource_type: str) -> str:
    """:func:`type_history_key`'s partition key without its ``#{shard}``."""
    return f"WS#{ws}#TH#{resource_type}"


def id_order_key(ws: str, resource_type: str, resource_id: str) -> dict[str, str]:
    """The ``TypeIndex`` attributes of a live ``CURRENT`` item: ``TPK = WS#{ws}#ID#{type}#{shard}``
    / ``TSK = {id}``, so the 8 shards merged list the type's resources in id order (``_sort=_id``);
    a deleted resource's ``CURRENT`` has none (sparse)."""
    return {TYPE_INDEX_PK: f"{id_order_pk(ws, resource_type)}#{_shard(resource_id)}", TYPE_INDEX_SK: resource_id}


def id_order_pk(ws: str, resource_type: str) -> str:
    """:func:`id_order_key`'s partition key without its ``#{shard}``."""
    return f"WS#{ws}#ID#{resource_type}"
