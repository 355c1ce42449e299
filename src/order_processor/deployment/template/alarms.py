"""What wakes an operator at 3 a.m., and the dashboard they open then.

Alarms: a dead letter in any DLQ; the oldest command waiting longer than
OldestCommandAgeSeconds; the oldest event waiting for the cache worker longer than
OldestCacheEventAgeSeconds; sustained DynamoDB throttling or any DynamoDB system error on a
table; an SNS delivery that failed. The dashboard shows the numbers of `order-processor
status` (each queue's visible, in-flight and dead-letter messages) with the ages, the
tables' capacity, throttles and errors and the topic's deliveries. Table item counts are
not a CloudWatch metric (DescribeTable refreshes them about every six hours): `status`
reads them.
"""

from __future__ import annotations

import json
from typing import Any

from order_processor.deployment.resources import QueueSpec, Resources, TableSpec
from order_processor.deployment.template.names import NO_VALUE, get_att, logical_id, ref, sub

# Every data-plane call whose SystemErrors the alarm adds up (at most 9 metrics and the sum
# fit one alarm's 10): the programs' calls and the operators'.
DYNAMODB_OPERATIONS = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
)
RUNBOOK = "README, For operators: order-processor status, then dlq list"


def alarm_resources(resources: Resources) -> dict[str, Any]:
    alarms: dict[str, Any] = {}
    for queue in resources.queues:
        if queue.dead_letter is not None:
            alarms.update(_dead_letters(queue.dead_letter))
    alarms.update(_oldest_command(resources.commands_queue))
    alarms.update(_oldest_cache_event(resources.order_cache_queue))
    for table in resources.tables:
        alarms.update(_throttled(table))
        alarms.update(_system_errors(table))
    for topic in resources.topics:
        alarms.update(_failed_deliveries(topic))
    return alarms


def alarm_names(resources: Resources) -> list[str]:
    """The alarms' names (`${Prefix}-...`), for the dashboard's alarm widget."""
    return [
        alarm["Properties"]["AlarmName"]["Fn::Sub"] for alarm in alarm_resources(resources).values()
    ]


def _alarm(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": sub(name),
            "AlarmDescription": sub(description),
            "AlarmActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], NO_VALUE]},
            "OKActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], NO_VALUE]},
            "ComparisonOperator": "GreaterThanThreshold",
            # No data: nothing was sent, nothing failed.
            "TreatMissingData": "notBreaching",
            **properties,
        },
    }


def _queue_metric(queue: QueueSpec, metric: str, statistic: str) -> dict[str, Any]:
    return {
        "Namespace": "AWS/SQS",
        "MetricName": metric,
        "Dimensions": [
            {"Name": "QueueName", "Value": get_att(logical_id(queue.name, "Queue"), "QueueName")}
        ],
        "Statistic": statistic,
        "Period": 60,
    }


def _dead_letters(dlq: QueueSpec) -> dict[str, Any]:
    bare = dlq.name.removesuffix(".fifo")
    alarm = _alarm(
        f"{bare}-not-empty",
        f"A message reached {dlq.name}: a bug or a permission, never bad input. {RUNBOOK}",
        **_queue_metric(dlq, "ApproximateNumberOfMessagesVisible", "Maximum"),
        EvaluationPeriods=1,
        Threshold=0,
    )
    return {logical_id(dlq.name, "NotEmptyAlarm"): alarm}


def _oldest_command(commands: QueueSpec) -> dict[str, Any]:
    alarm = _alarm(
        commands.name.removesuffix(".fifo") + "-oldest-age",
        f"A command has waited in {commands.name} longer than OldestCommandAgeSeconds for "
        f"5 minutes: workers down, too few, or one user's group stuck. {RUNBOOK}",
        **_queue_metric(commands, "ApproximateAgeOfOldestMessage", "Maximum"),
        EvaluationPeriods=5,
        Threshold=ref("OldestCommandAgeSeconds"),
    )
    return {logical_id(commands.name, "OldestAgeAlarm"): alarm}


def _oldest_cache_event(cache: QueueSpec) -> dict[str, Any]:
    alarm = _alarm(
        cache.name + "-oldest-age",
        f"An event has waited in {cache.name} longer than OldestCacheEventAgeSeconds for "
        "5 minutes: the cache worker is down or too slow; the live streams lag by as much "
        "(reads stay correct: entries expire, the gateway reads DynamoDB).",
        **_queue_metric(cache, "ApproximateAgeOfOldestMessage", "Maximum"),
        EvaluationPeriods=5,
        Threshold=ref("OldestCacheEventAgeSeconds"),
    )
    return {logical_id(cache.name, "OldestAgeAlarm"): alarm}


def _table_metric(table: TableSpec, metric: str, operation: str | None = None) -> dict[str, Any]:
    dimensions = [{"Name": "TableName", "Value": ref(logical_id(table.name, "Table"))}]
    if operation:
        dimensions.append({"Name": "Operation", "Value": operation})
    return {
        "Metric": {"Namespace": "AWS/DynamoDB", "MetricName": metric, "Dimensions": dimensions},
        "Period": 60,
        "Stat": "Sum",
    }


def _sum_of(metrics: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = [
        {"Id": f"m{number}", "MetricStat": metric, "ReturnData": False}
        for number, metric in enumerate(metrics, start=1)
    ]
    expression = " + ".join(f"FILL({query['Id']}, 0)" for query in queries)
    return [*queries, {"Id": "total", "Expression": expression, "Label": label}]


def _throttled(table: TableSpec) -> dict[str, Any]:
    metrics = [_table_metric(table, m) for m in ("ReadThrottleEvents", "WriteThrottleEvents")]
    alarm = _alarm(
        f"{table.name}-throttled",
        f"{table.name} throttled requests in 3 of 5 minutes (the SDK retries a few; this "
        "many slows every saga): provisioned capacity too low, or a hot key.",
        Metrics=_sum_of(metrics, "throttle events"),
        EvaluationPeriods=5,
        DatapointsToAlarm=3,
        Threshold=0,
    )
    return {logical_id(table.name, "ThrottledAlarm"): alarm}


def _system_errors(table: TableSpec) -> dict[str, Any]:
    metrics = [_table_metric(table, "SystemErrors", op) for op in DYNAMODB_OPERATIONS]
    alarm = _alarm(
        f"{table.name}-system-errors",
        f"DynamoDB answered {table.name} with HTTP 500s: check the AWS Health Dashboard; "
        "the workers retry, commands wait in their queue.",
        Metrics=_sum_of(metrics, "system errors"),
        EvaluationPeriods=1,
        Threshold=0,
    )
    return {logical_id(table.name, "SystemErrorsAlarm"): alarm}


def _failed_deliveries(topic: str) -> dict[str, Any]:
    alarm = _alarm(
        f"{topic}-delivery-failed",
        f"{topic} could not deliver to a subscribed queue (its queue policy or key?): "
        "followers miss events until fixed; `events republish` resends them.",
        Namespace="AWS/SNS",
        MetricName="NumberOfNotificationsFailed",
        Dimensions=[
            {"Name": "TopicName", "Value": get_att(logical_id(topic, "Topic"), "TopicName")}
        ],
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0,
    )
    return {logical_id(topic, "DeliveryFailedAlarm"): alarm}


def dashboard_resource(resources: Resources) -> dict[str, Any]:
    body = {"widgets": _widgets(resources)}
    return {
        "OperationsDashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": sub("${Prefix}-order-processor"),
                "DashboardBody": sub(json.dumps(body, sort_keys=True)),
            },
        }
    }


def _widgets(resources: Resources) -> list[dict[str, Any]]:
    alarm_arn = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
    widgets: list[dict[str, Any]] = [
        _widget("alarm", "Alarms", {"alarms": [alarm_arn + n for n in alarm_names(resources)]})
    ]
    dead_letters = {q.dead_letter.name for q in resources.queues if q.dead_letter}
    for queue in resources.queues:
        if queue.name in dead_letters:
            continue
        sqs = ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
        metrics: list[list[Any]] = [
            [*sqs, queue.name, {"label": "visible"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", queue.name],
        ]
        metrics[1].append({"label": "in flight"})
        if queue.dead_letter is not None:
            metrics.append([*sqs, queue.dead_letter.name, {"label": "dead letters"}])
        metrics.append(
            [
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "QueueName",
                queue.name,
                {"label": "oldest, s", "yAxis": "right"},
            ]
        )
        title = f"{queue.name}: visible, in flight, DLQ (left); oldest age, s (right)"
        widgets.append(_metric_widget(title, metrics, "Maximum"))
    for table in resources.tables:
        metrics = [
            ["AWS/DynamoDB", name, "TableName", table.name]
            for name in (
                "ConsumedReadCapacityUnits",
                "ConsumedWriteCapacityUnits",
                "ReadThrottleEvents",
                "WriteThrottleEvents",
            )
        ]
        widgets.append(_metric_widget(f"{table.name}: capacity used, throttles", metrics, "Sum"))
    for topic in resources.topics:
        metrics = [
            ["AWS/SNS", name, "TopicName", topic]
            for name in (
                "NumberOfMessagesPublished",
                "NumberOfNotificationsDelivered",
                "NumberOfNotificationsFailed",
            )
        ]
        widgets.append(_metric_widget(f"{topic}: published, delivered, failed", metrics, "Sum"))
    return widgets


def _metric_widget(title: str, metrics: list[list[Any]], stat: str) -> dict[str, Any]:
    properties = {
        "title": title,
        "metrics": metrics,
        "stat": stat,
        "period": 60,
        "region": "${AWS::Region}",
        "view": "timeSeries",
    }
    return _widget("metric", title, properties)


def _widget(kind: str, title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "width": 12,
        "height": 6,
        "properties": {"title": title, **properties},
    }
