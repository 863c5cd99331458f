"""leadstream: real-time lead scoring on Kafka."""

__version__ = "0.1.0"
