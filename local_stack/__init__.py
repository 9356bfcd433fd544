"""Local stack: run the SAM template on this machine, with moto as AWS (``python -m local_stack``).

Everything comes from ``template.yaml``; nothing about routes, functions or resources is kept here.

    template.yaml ──template──▶ resources ──aws_resources──▶ moto (tables, buckets, queues, secrets)
                  ──lambda_runtime──▶ handlers, each run in its own execution environments (processes)
    HTTP client ──http_gateway (routes, Lambda authorizer, payload 2.0)──▶ handler
    moto ──events (S3 listing, SQS long poll, stream records, schedules)──▶ handler

Modules: ``template`` (YAML + intrinsics), ``aws_resources``, ``lambda_runtime``, ``http_gateway``,
``environment`` (one execution environment's process), ``events/`` (``s3``, ``sqs``, ``schedule``,
``streams``, ``filters``), ``bootstrap`` (admin key,
demo workspace), ``stack`` (the ordered start/stop), ``moto_speedups``, ``testing`` (a subprocess
fixture for end-to-end tests), ``__main__`` (the CLI).
"""
