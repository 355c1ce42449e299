"""SQS/SNS adapters: command and event contracts, the consumer runtime, the producer."""
