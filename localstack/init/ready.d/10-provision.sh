#!/bin/bash
# LocalStack ready hook: provision every resource with the project's own provisioning code
# (src/ is mounted read-only; LocalStack's Python brings botocore, which is all it needs).
set -euo pipefail
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
PYTHONPATH="${ORDER_PROCESSOR_SRC:-/opt/order-processor/src}" \
  exec "${LOCALSTACK_PYTHON:-/opt/code/localstack/.venv/bin/python}" -m order_processor.deployment.provision
