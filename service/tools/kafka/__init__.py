"""Local Apache Kafka on 127.0.0.1 for the demo and the tests: fetched from Maven Central with
`mvn` (no Docker, no tarball), run on `java` as KRaft nodes (broker + controller each).

version (which Kafka), maven (its jars), host (ports, processes, tools), probe (does it
answer), tls (an SSL listener's files), node (one Kafka process), cluster (three of them),
background (`motcua broker start|stop|status`). service/tools/broker.py re-exports the API.
"""
