"""Local stand-ins for the demo and the tests: a real single-node Apache Kafka broker
(KRaft) started from Maven Central jars, and a real HTTP tracker on loopback."""
