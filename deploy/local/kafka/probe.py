"""Exit 0 when a Kafka broker answers a metadata request; kafka.sh's readiness check.

An open port is not enough: the socket listens before the broker has joined the KRaft quorum,
and clients that connect then get errors. Usage: probe.py HOST:PORT
"""

import sys

from kafka import KafkaAdminClient


def main(bootstrap: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        brokers = admin.describe_cluster().get("brokers", [])
        admin.list_topics()
    finally:
        admin.close()
    return 0 if brokers else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
