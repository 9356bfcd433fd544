"""Test authorizer: the admin key (from Secrets Manager), keys issued by the admin function
(``fpk_``) and ``allow-*`` tokens are allowed; ``boom`` raises; anything else is denied."""

import os
import uuid

import boto3

secrets = boto3.client("secretsmanager")
table = boto3.resource("dynamodb").Table(os.environ["RECORDER_TABLE"])


def handler(event, context):
    table.put_item(Item={"PK": "authorizer", "SK": str(uuid.uuid4()), "route_key": event["routeKey"]})
    token = event["identitySource"][0].removeprefix("Bearer ")
    if token == "boom":
        raise RuntimeError("authorizer exploded")
    admin_key = secrets.get_secret_value(SecretId=os.environ["ADMIN_KEY_SECRET_ARN"])["SecretString"]
    if token == admin_key:
        return {"isAuthorized": True, "context": {"role": "admin", "principal": "admin"}}
    if token.startswith(("allow-", "fpk_")):
        return {
            "isAuthorized": True,
            "context": {"role": "reader", "principal": token, "event_type": event["type"], "route_arn": event["routeArn"]},
        }
    return {"isAuthorized": False}
