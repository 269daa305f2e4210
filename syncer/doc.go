// Package syncer runs the workloads of a virtual cluster on its host cluster.
//
// A virtual cluster has an apiserver and controllers but no nodes. The syncer
// copies what needs a node down into one host namespace and copies the
// outcome back up:
//
//   - Pods, rewritten to work in the host namespace (references renamed, the
//     virtual ServiceAccount token in a host Secret); status and node back up.
//   - Services with the same cluster IP on both sides; Endpoints of
//     selector-less Services; ConfigMaps and Secrets while a pod refers to
//     them; PersistentVolumeClaims, status back up.
//   - Nodes and Events, host to virtual. A container's start on a simulated
//     node of the embedded host is told by the syncer itself, in the virtual
//     cluster only (SimulatedContainerPrefix). A virtual Node keeps the labels and
//     taints set in the virtual cluster beside its host node's; where they
//     make the virtual choice of nodes differ from the host's, or a pod names
//     its node, the host copy of a pod is held to the virtual cluster's
//     choice, by node name.
//   - When Options.Sync names them: Ingresses (backends and TLS Secrets
//     renamed, status up) and NetworkPolicies (selectors of virtual pods
//     and namespaces translated to selectors of the host copies).
//
// Everything else (Deployments, CRDs, RBAC, ...) stays virtual. Host objects
// are named by HostName and carry labels and annotations that lead back to
// their virtual objects; the syncer never changes a host object without them.
//
// Each kind written to the host is one file with one hostKind entry, listed
// in hostKinds; Delete and the listings of host objects read that table.
// Each kind is a controller on shared informers and a rate-limited work
// queue whose reconcile compares both sides and makes the target match, so a
// restart or resync never duplicates anything.
package syncer
