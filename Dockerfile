# The worker image: the locked runtime dependencies and the project, nothing else.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY workers ./workers
RUN pip install --no-cache-dir --no-deps . && useradd --system --no-create-home worker
USER worker
ENTRYPOINT ["order-processor"]
CMD ["worker", "orders"]
