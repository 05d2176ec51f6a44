"""`cairn dev`: a real local control plane (etcd, kube-apiserver, controller-manager, scheduler,
SeaweedFS S3 and a local node) for trying Cairn and for its tests, without Docker."""
