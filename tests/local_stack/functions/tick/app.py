import os
import uuid

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])


def handler(event, context):
    table.put_item(
        Item={
            "PK": "tick",
            "SK": str(uuid.uuid4()),
            "detail_type": event["detail-type"],
            "source": event["source"],
            "resources": event["resources"],
        }
    )
