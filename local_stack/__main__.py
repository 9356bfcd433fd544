"""``python -m local_stack`` (``make dev``): run the platform locally from ``template.yaml``.

Options (environment in brackets): ``--template PATH`` (default ``<project>/template.yaml``),
``--port N`` [``PORT``, default 3000; 0 picks a free port], ``--host``, ``--state-file PATH``
(JSON ``{base_url, endpoint_url, workspace_id, api_key, demo_error}`` written once ready, removed at
exit), ``--no-demo``, ``--no-demo-ehr`` (no local FHIR server, no sync from it), ``--parameter KEY=VALUE`` (template parameters), ``--schedule-scale F``
[``LOCAL_SCHEDULE_SCALE``]. ``AWS_ENDPOINT_URL`` set → use that AWS endpoint instead of starting
moto. ``FHIR_PLATFORM_ADMIN_KEY`` → the admin key (generated and printed when unset).

The banner (URLs, keys, a curl example) goes to stdout; logs go to stderr. SIGINT/SIGTERM stop the
stack cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from local_stack.bootstrap import ADMIN_KEY_ENV
from local_stack.lambda_runtime import DEFAULT_CONCURRENCY
from local_stack.stack import PROJECT_ROOT, LocalStack, StackConfig, StackError
from local_stack.template import TemplateError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description="Run the SAM template locally on moto.")
    parser.add_argument("--template", type=Path, default=PROJECT_ROOT / "template.yaml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    parser.add_argument("--state-file", type=Path)
    parser.add_argument("--no-demo", action="store_true", help="do not create the demo workspace")
    parser.add_argument("--no-demo-ehr", action="store_true", help="do not start the demo EHR (a local FHIR server) nor sync from it")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter override")
    parser.add_argument(
        "--schedule-scale",
        type=float,
        default=float(os.environ.get("LOCAL_SCHEDULE_SCALE") or 1.0),
        help="multiply rate() schedules by this (0.01: five minutes become three seconds)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("LOCAL_LAMBDA_CONCURRENCY") or DEFAULT_CONCURRENCY),
        help="execution environments per function at most (lower with ReservedConcurrentExecutions); more invocations queue",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    for item in args.parameter:
        if "=" not in item:
            parser.error(f"--parameter expects KEY=VALUE, got {item!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s local-stack %(levelname)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("local_stack")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False

    config = StackConfig(
        template=args.template,
        host=args.host,
        port=args.port,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        state_file=args.state_file,
        demo=not args.no_demo,
        demo_ehr=not args.no_demo_ehr,
        schedule_scale=args.schedule_scale,
        concurrency=args.concurrency,
        parameters=dict(item.split("=", 1) for item in args.parameter),
    )
    stack = LocalStack(config)

    def request_stop(signum: int, frame: Any) -> None:
        if stack.stop_event.is_set():
            os._exit(130)  # second Ctrl-C: stop waiting for a clean shutdown
        logger.info("stopping (%s)", signal.Signals(signum).name)
        stack.stop_event.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except (StackError, TemplateError) as exc:
        logger.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # e.g. the port is taken
        logger.error("cannot start: %s (port %d)", exc, args.port)
        return 1
    print(banner(stack), flush=True)
    stack.wait()
    stack.stop()
    logger.info("stopped")
    return 0


def banner(stack: LocalStack) -> str:
    lines = [
        "",
        "Local stack ready",
        f"  API:          {stack.base_url}",
        f"  API docs:     {stack.base_url}/v1/docs   (Swagger UI; the document: {stack.base_url}/v1/openapi.json)",
        f"  AWS endpoint: {stack.endpoint_url}   (moto; AWS_ENDPOINT_URL for boto3 / aws cli)",
    ]
    if stack.admin_key_generated:
        lines.append(f"  Admin key:    {stack.admin_key}   (generated; set {ADMIN_KEY_ENV} to choose it)")
    if stack.workspace_id:
        lines += [
            "Demo workspace 'Demo Clinic'",
            f"  workspace id: {stack.workspace_id}",
            f"  API key:      {stack.api_key}",
            "Try:",
            f"  BASE={stack.base_url} WS={stack.workspace_id} KEY={stack.api_key}",
            '  curl -X POST "$BASE/v1/$WS/fhir/resources/Patient" -H "Authorization: Bearer $KEY" '
            "-H \"Content-Type: application/json\" -d '{\"data\": {\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Demo\"}]}}'",
        ]
        if stack.ehr is not None:
            lines += [
                "Demo EHR (a FHIR R4 server on this machine, seeded with a few Synthea patients)",
                f"  FHIR base:    {stack.ehr.base_url}",
                f"  data source:  {stack.data_source_id}   (scheduled; a first sync is running: patients arrive in seconds)",
                '  curl "$BASE/v1/$WS/fhir/patients" -H "Authorization: Bearer $KEY"',
                f'  curl "$BASE/v1/$WS/data-sources/{stack.data_source_id}/status" -H "Authorization: Bearer $KEY"',
            ]
        elif stack.ehr_note:
            lines.append(f"  ({stack.ehr_note})")
    elif stack.demo_error:
        lines.append(f"  Demo workspace NOT created: {stack.demo_error}")
    lines += [
        "Local admin routes: GET /_local/routes, GET /_local/status, POST /_local/schedules/<FunctionLogicalId>",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
