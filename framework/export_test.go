package framework

// StartCluster lets the tests of package framework_test wrap the start of a
// virtual cluster.
var StartCluster = &startCluster
