"""Lambda entry point: S3 ObjectCreated under imports/{workspace_id}/ -> split into chunks, queue them."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.imports.handlers import handle_s3_event
    from fhir_platform.imports.service import ImportService
    from fhir_platform.observability import logger, metrics

    service = ImportService()


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics  # flushes this invocation's counts (embedded metric format)
def handler(event, context):
    return handle_s3_event(event, service)
