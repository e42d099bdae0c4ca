"""`zabby verify`: drive a ZooKeeper-compatible ensemble with concurrent workloads
under faults, record the history, check the guarantees, print a verdict."""
