"""Lambda entry point: EventBridge schedule -> queue the due (data source, resource type) polls."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.connector.handlers import handle_schedule_event
    from fhir_platform.connector.scheduler import Scheduler
    from fhir_platform.observability import logger, metrics

    scheduler = Scheduler()


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics  # flushes this invocation's counts (embedded metric format)
def handler(event, context):
    return handle_schedule_event(event, scheduler)
