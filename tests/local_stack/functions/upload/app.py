import os
from urllib.parse import unquote_plus

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])


def handler(event, context):
    for record in event["Records"]:
        obj = record["s3"]["object"]
        table.put_item(
            Item={
                "PK": "s3",
                "SK": unquote_plus(obj["key"]),
                "raw_key": obj["key"],
                "size": obj["size"],
                "etag": obj["eTag"],
                "event_name": record["eventName"],
                "event_source": record["eventSource"],
                "bucket": record["s3"]["bucket"]["name"],
                "bucket_arn": record["s3"]["bucket"]["arn"],
            }
        )
