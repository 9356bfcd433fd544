"""How deep a list or search can be paged: ``offset``/``_offset``/``continuation_token`` go up to
:data:`MAX_OFFSET` (a 422 naming the parameter beyond it). A page that deep is read by skipping
that many index entries, far past what a request can do in its time; and an unbounded integer
reached ``itertools.islice`` (the fuzz run's ``offset=10**31`` was a 500). Narrow the query instead."""

MAX_OFFSET = 1_000_000
