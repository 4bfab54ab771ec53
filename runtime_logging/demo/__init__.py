"""The reference workload: an installer that downloads and installs modules."""
