# The worker image: the project and its dependencies, nothing else.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY workers ./workers
RUN pip install --no-cache-dir . && useradd --system --no-create-home worker
USER worker
ENTRYPOINT ["order-processor"]
CMD ["worker", "orders"]
