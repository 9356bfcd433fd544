"""Lambda's init — importing a function's ``app.py`` — without the cyclic garbage collector.

Every function module wraps its imports and set-up in :class:`init`::

    with coldstart.init():
        from fhir_platform.api.resolver import build_app, lambda_handler
        ...
        app = build_app(router)

An init creates a few hundred thousand objects (modules, classes, functions, pydantic and botocore
tables) that all live as long as the execution environment. CPython's collector runs a young pass
every 700 allocations and a full one when the old generation has grown by a quarter, over exactly
those objects, and frees next to nothing: ~25-40 ms CPU of a ~200 ms cold start (docs/operations.md,
Cold starts). :class:`init` pauses it for the block, then ``gc.freeze()``: what the init built moves
to the permanent generation, which later passes never scan — without the freeze, the first request
would pay the skipped passes at once (every init object would still be in the youngest generation).
The collector is then resumed as it was. A cycle that became garbage during the init stays in
memory (frozen): a few kilobytes at most, once per environment.

And the young generation's threshold goes from CPython's 700 to :data:`YOUNG_THRESHOLD` allocations:
a request that writes a batch (500 resources of an import) allocates hundreds of thousands of
container objects, nearly all freed by reference counting; at 700 the collector ran a young pass
every 700 of them and, as survivors piled up, full passes over everything the batch held. At
10,000 the write path spends ~9 % less CPU per resource (``bench/write_cpu.py``; docs/write-path.md)
for at most 10,000 more objects alive before a pass — kilobytes to a few megabytes, in a function
with ≥ 512 MB. The older generations keep CPython's thresholds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young-generation passes (CPython's default: 700)


class init:  # noqa: N801 - used as a statement: ``with coldstart.init():``
    """Pause the cyclic GC for the block; on leaving it (error or not), freeze what exists, raise the
    young generation's threshold and resume."""

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        if self._was_enabled:
            gc.enable()
