"""Returns (parts of) the event and context it received, to check what the gateway sends."""

import json
import os


def handler(event, context):
    if event["rawPath"] == "/v1/explode":
        raise ValueError("the echo function exploded on purpose")
    echoed = {
        "event": event,
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "env": {k: os.environ.get(k) for k in ("STAGE", "RECORDER_TABLE", "ECHO_QUEUE_URL", "ECHO_STREAM_ARN", "ECHO_BUCKET", "ADMIN_KEY_SECRET_ARN")},
        "module": __name__,
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-echo": "yes"},
        "cookies": ["a=1; Path=/", "b=2; Path=/"],
        "body": json.dumps(echoed),
    }
