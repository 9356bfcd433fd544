"""Lambda authorizer of the HTTP API: bearer API key (or platform admin key) -> principal context."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.auth.authorizer import Authenticator, authorizer_response
    from fhir_platform.observability import logger

    authenticator = Authenticator()


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return authorizer_response(event, authenticator)
