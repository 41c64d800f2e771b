"""What an operator sees of a running Personae: Prometheus metrics and log formats."""
