"""The one place Logger, Tracer and Metrics are created (service name from POWERTOOLS_SERVICE_NAME).

Logs never carry PHI: handlers log ids, counts and outcomes, never resource bodies, names,
identifiers or API keys.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="FhirPlatform")
