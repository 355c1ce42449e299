"""Found by the issue-21 attacker; each test failed first.

A program whose credentials come from the default
chain's web identity (IRSA, the deployment of deploy/kubernetes) and that starts while STS
cannot reach the cluster's identity provider exits at once, into a restart loop, instead
of waiting, not ready, as it waits for an endpoint that is away.

STS answers `IDPCommunicationError` ("often a transient error caused by network
conditions. Retry the request a limited number of times": STS API Reference); botocore's
standard mode retries it (`botocore.retries.special.RetryIDPCommunicationError`), but
`awserrors.is_transient` only consults two of the standard mode's checkers, so once the
credential fetch has spent its attempts `reachable` takes it for a permanent error.

README, "AWS as it fails": "every program stays up, answers /readyz 503, waits for the
endpoint at start"; tests/e2e/test_outage.py: "Restarted while AWS is away (a pod
rescheduled in an outage), a program waits for the endpoint, not ready, instead of exiting
into a restart loop."
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from order_processor.deployment.emulator import free_port
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.e2e.test_observability import get, until_status

IDP_UNREACHABLE = b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>IDPCommunicationError</Code>
<Message>Couldn't retrieve verification key from your identity provider</Message></Error>
<RequestId>a21</RequestId></ErrorResponse>"""

CREDENTIALS = b"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>ASIAATTACK21</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>
<SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<SubjectFromWebIdentityToken>system:serviceaccount:op:order-worker</SubjectFromWebIdentityToken>
<AssumedRoleUser><Arn>arn:aws:sts::000000000000:assumed-role/op-order-worker/s</Arn>
<AssumedRoleId>AROAATTACK21:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult>
<ResponseMetadata><RequestId>a21</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


class FakeSts:
    """STS's AssumeRoleWithWebIdentity: IDPCommunicationError while `idp_away`."""

    def __init__(self) -> None:
        self.idp_away = True
        self.calls = 0
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sts.calls += 1
                body = IDP_UNREACHABLE if sts.idp_away else CREDENTIALS
                self.send_response(400 if sts.idp_away else 200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def sts() -> Iterator[FakeSts]:
    fake = FakeSts()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


async def test_a_worker_started_while_sts_cannot_reach_the_identity_provider_waits(
    harness: Harness, sts: FakeSts, tmp_path: Path
) -> None:
    await harness.create_user("irsa_u", usd="100")
    await harness.add_asset("BTC", "10")
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    port = free_port()
    worker = harness.start_worker(
        burst=False,
        env={
            # What the EKS pod identity webhook sets for IRSA (deploy/kubernetes).
            "AWS_ROLE_ARN": "arn:aws:iam::000000000000:role/op-order-worker",
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ENDPOINT_URL_STS": sts.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "ORDER_PROCESSOR_METRICS_PORT": str(port),
        },
    )
    try:
        await asyncio.sleep(8)
        waiting = (worker.poll(), get(f"http://127.0.0.1:{port}/readyz")[0])
        sts.idp_away = False  # the identity provider is back
        if worker.poll() is None:
            buy = harness.market("irsa_u", "buy", "BTC", "1")
            await harness.send(buy)
            await until_status(harness, buy.payload.order_id, OrderStatus.COMPLETED)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        await harness.wait(worker, 60)

    assert sts.calls > 0  # the credentials were asked for, and refused
    assert waiting == (None, 503), (
        f"exit code {waiting[0]} while STS could not reach the IdP:\n{harness.worker_output()}"
    )
