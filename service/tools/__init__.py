"""Tools around the service: the local Kafka broker, the simulator, benchmarks, the demo."""
