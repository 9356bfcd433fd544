"""Lambda entry point: DynamoDB stream (resource event inserts) -> the EHR (partial batch failures reported)."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.connector.handlers import handle_outbound_event
    from fhir_platform.connector.outbound import OutboundWriter
    from fhir_platform.observability import logger, metrics

    writer = OutboundWriter()


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics  # flushes this invocation's counts (embedded metric format)
def handler(event, context):
    return handle_outbound_event(event, writer)
