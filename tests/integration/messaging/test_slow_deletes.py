"""Found by the issue-21 attacker; each test failed first.

One hung DeleteMessageBatch holds every delete of the worker behind
it, unprotected: the groups that finish meanwhile have stopped their heartbeats, their
messages reappear after the visibility timeout and run again (on FIFO, each user's group
waits meanwhile), and the deletes that finally go out carry stale receipt handles.

`Consumer._flush_deletes` is one serial pipeline: `while self._deletes: ... await
self._delete_batch(chunk)`; `_run_group` cancels the heartbeat before `_settle` awaits its
delete. A delete whose connection hangs waits for the read timeout (30 s, six attempts);
the fault proxy's `slow` and a dropped connection do the same. Nothing is applied twice
(every handler here is idempotent), but every command finished in that window is read,
decided and announced again, and a FIFO user waits behind it.

Looked for after a chaos run (seed 5, AWS_BAD_DAY with `slow=0.03:12000` over the e2e
visibility of 5 s, --orders 300 --outage 20): the catch-up analytics worker's deletes
failed `ReceiptHandleIsInvalid` in bursts every ~12 s and the burst worker had not drained
after 120 s (the run aborted, rc 1). That run is consistent with this mechanism; this
test isolates it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, cast

from botocore.exceptions import ReadTimeoutError

from order_processor.messaging.consumer import Ack, Consumer, Message, Outcome


class FirstDeleteHangs:
    """The SQS client, but the first DeleteMessageBatch hangs 6 s and times out (its
    connection stalled), as botocore reports a read timeout; the next attempt goes through."""

    def __init__(self, sqs: Any) -> None:
        self.sqs, self.hung = sqs, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    async def delete_message_batch(self, **arguments: Any) -> Any:
        if not self.hung:
            self.hung = True
            await asyncio.sleep(6)
            raise ReadTimeoutError(endpoint_url="http://sqs")
        return await self.sqs.delete_message_batch(**arguments)


async def test_one_hung_delete_never_makes_other_finished_messages_run_again(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, _ = queue
    for n in range(8):
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": f"u{n}", "n": n}))
    runs: Counter[int] = Counter()

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        n = json.loads(messages[0].body)["n"]
        runs[n] += 1
        await asyncio.sleep(0.3 * n)  # the groups finish one after another
        return {m.message_id: Ack() for m in messages}

    consumer = Consumer(
        sqs=cast(Any, FirstDeleteHangs(sqs)),
        queue_url=url,
        handle_group=handle,
        group_of=lambda m: json.loads(m.body)["user"],
        burst=True,
        visibility_timeout=2,
    )
    await asyncio.wait_for(consumer.run(), 60)

    assert sorted(runs) == list(range(8))
    twice = sorted(n for n, count in runs.items() if count > 1)
    assert twice == [], f"messages {twice} ran again while one delete hung"
