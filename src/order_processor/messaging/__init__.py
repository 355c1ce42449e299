"""SQS and SNS adapters: the consumer runtime, the producer, the event publisher, the
status follower. The contracts themselves are domain types (`domain.commands`,
`domain.events`)."""
