"""The order worker: order commands from SQS become sagas; status events go to SNS."""
