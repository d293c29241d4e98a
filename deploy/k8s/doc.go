// Package k8s holds no code: it is the home of the tests that render the
// kustomize overlays in this directory and decode every object strictly into
// the Kubernetes API types, and that check the Grafana dashboard and the
// Prometheus rules in ../grafana and ../prometheus. The Kubernetes
// dependencies are imported only from _test.go files, so no binary links them.
package k8s
