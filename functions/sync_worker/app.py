"""Lambda entry point: SQS poll message -> one inbound poll of the EHR (partial batch failures reported)."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    import aws_lambda_powertools.utilities.batch  # noqa: F401 - every invocation uses it: loaded at init, not deferred
    from fhir_platform.connector.handlers import handle_sync_event
    from fhir_platform.connector.inbound import InboundPoller
    from fhir_platform.observability import logger, metrics

    poller = InboundPoller()


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics  # flushes this invocation's counts (embedded metric format)
def handler(event, context):
    return handle_sync_event(event, context, poller)
