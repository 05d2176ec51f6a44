"""The Cairn Kubernetes operator (kopf): Job, Run and Reexecution resources."""
