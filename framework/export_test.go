package framework

// StartCluster lets the tests of package framework_test wrap the start of a
// virtual cluster.
var StartCluster = &startCluster

// PIDs lists the component processes of a cluster this process created, for
// the tests that kill one.
func PIDs(vc *VirtualCluster) map[string]int { return vc.pids() }

// StateDir is the folder under which e keeps its clusters, for the tests that
// check what a teardown leaves.
func StateDir(e *Environment) string { return e.root }

// HostKubeconfigPath is e's host kubeconfig, "" before the host is up.
func HostKubeconfigPath(e *Environment) string { return e.hostKubeconfigPath() }
