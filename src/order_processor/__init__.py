"""order-processor: the common package of the order-processing services."""
