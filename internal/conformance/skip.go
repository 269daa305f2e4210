package conformance

import (
	"regexp"
	"strings"
	"time"
)

// Skip is a group of conformance specs that a virtual cluster on the
// embedded host does not run, on purpose, and why: what they check happens
// in a real node, which the embedded host's KWOK nodes only simulate. A
// virtual cluster on a real host runs real containers; these are for the
// embedded host.
type Skip struct{ Pattern, Why string }

// SkippedOnPurpose lists them. Every other [Conformance] spec runs, and a
// failure among them is a failure.
var SkippedOnPurpose = []Skip{
	{`\[NodeConformance\]`, "checks the node itself: the kubelet running a real image (files in volumes, a container's output, probes, lifecycle hooks, security contexts)"},
	{`\[sig-api-machinery\] (AdmissionWebhook|CustomResourceConversionWebhook|Aggregator|CustomResourceFieldSelectors)`, "the apiserver calls a webhook or an API server that runs in a pod: a real container serving HTTPS"},
	{`\[sig-network\] DNS `, "resolves names from inside a pod, with the cluster's DNS server"},
	{`\[sig-network\] Proxy `, "proxies HTTP to a server running in a pod"},
	{`\[sig-node\] Pod InPlace Resize`, "the kubelet resizes a running container's resources"},
	{`\[sig-apps\] StatefulSet .*(unhealthy|halt|roll backs)`, "makes a pod unready by moving a file inside its real web server container"},
	{`\[sig-apps\] Job .*(pod failure policy|DisruptionTarget)`, "its pods share a hostPath volume and count on files a container writes there, from one pod to the next"},
	{`\[sig-apps\] StatefulSet .*evicted statefulset`, "binds a pod to a node by name and counts on that node's kubelet failing it for a host port already in use: the syncer refuses host ports by default (the baseline Pod Security level), and a simulated node admits every pod"},
	{`\[sig-scheduling\] (SchedulerPredicates|SchedulerPreemption)`, "the host's scheduler places a virtual cluster's pods on the host's nodes, whose labels, taints and capacity the test cannot set through the virtual cluster (as in vCluster)"},
}

// skipPattern is the one regular expression of SkippedOnPurpose and more.
func skipPattern(more string) string {
	var p []string
	if more != "" {
		p = append(p, more)
	}
	for _, s := range SkippedOnPurpose {
		p = append(p, s.Pattern)
	}
	return strings.Join(p, "|")
}

var skipRegexps = compile(SkippedOnPurpose)

// whySkipped says why a spec is skipped on purpose, "" if it is not.
func whySkipped(name string) string { return explain(SkippedOnPurpose, skipRegexps, name) }

func compile(list []Skip) []*regexp.Regexp {
	var rs []*regexp.Regexp
	for _, s := range list {
		rs = append(rs, regexp.MustCompile(s.Pattern))
	}
	return rs
}

// explain is the Why of the first of list whose pattern (compiled) matches
// name, "" if none does.
func explain(list []Skip, compiled []*regexp.Regexp, name string) string {
	for i, r := range compiled {
		if r.MatchString(name) {
			return list[i].Why
		}
	}
	return ""
}

// Subset is a named, fixed part of the suite: the specs whose text
// matches Focus and not Skip.
type Subset struct {
	Focus, Skip string
	// Timeout bounds the subset's run (Options.Timeout).
	Timeout time.Duration
}

// Subsets: "ci" is what CI runs on the newest version, a few minutes of the
// API's behaviour (namespaces, watches, custom resources, workloads,
// Services' API, a pod's observed generation) that turns red on a regression in faithfulness. It leaves
// out the specs of those groups that fail on the embedded host for reasons
// docs/conformance.md gives: traffic to a Service or a pod, a container's
// real exit code or output.
var Subsets = map[string]Subset{
	"ci": {
		Focus: `\[sig-api-machinery\] (Namespaces|Watchers|CustomResourceDefinition resources) |\[sig-apps\] (Deployment|ReplicaSet|Job) |\[sig-network\] Services |pod generation should start at 1`,
		Skip:  `serve a basic image|session affinity|functioning NodePort|change the type|serve a basic endpoint|serve multiport endpoints|same port and different protocols`,
		// About a minute alone; a spec that hangs fails it, named, well
		// inside CI's patience.
		Timeout: 8 * time.Minute,
	},
}

// KnownFailures explains the specs that run and fail on the embedded host,
// first match wins; docs/conformance.md gives each failure its line. Those
// marked "to fix" are vmatrix's to close.
var KnownFailures = []Skip{
	{`NoExecuteTaintManager`, "taints a node in the virtual cluster; since this run a virtual Node keeps the taints set there, and the virtual controller manager evicts for them (TestSync/*/NodeLabels)"},
	{`\[sig-apps\] Daemon set .*complex daemon`, "labels a node in the virtual cluster; since this run a virtual Node keeps the labels set there and pods go where they say (TestSync/*/NodeLabels)"},
	{`\[sig-apps\] StatefulSet .*evicted statefulset`, "its pods use a host port, which the syncer refuses by default; skipped on purpose since this run"},
	{`\[sig-network\] (Services|EndpointSlice|HostPort) |Guestbook|Update Demo|image on each replica`, "sends traffic to a Service or a pod and checks the answer: simulated pods serve nothing"},
	{`ClusterTrustBundle|PodCertificate`, "the kubelet writes trust bundles or pod certificates into a volume (beta features), which a simulated node does not"},
	{`ServiceAccounts .*(mount|OIDC)`, "reads the token inside the container, or a pod fetches the issuer's keys over HTTP"},
	{`\[sig-node\] (Variable Expansion|Security Context|ConfigMap|Secrets|PreStop|ImageVolume)|\[sig-storage\] (Subpath|EmptyDir)|Kubectl logs`, "checks the files, user, output or hooks of a real container"},
	{`API Server should have Endpoints`, "the virtual apiserver published no address in the kubernetes Service's Endpoints; since this run it publishes the machine's address (TestStartStop)"},
	{`CustomResourceFieldSelectors`, "sets up a conversion webhook served by a pod before it lists; skipped on purpose since this run, with the other webhook specs"},
	{`\[sig-apps\] Job .*(pod failure policy|DisruptionTarget)`, "its pods share a hostPath volume, which the syncer refuses by default (the baseline Pod Security level), and count on files a container writes there; skipped on purpose since this run"},
	{`\[sig-apps\] Job should adopt matching orphans`, "its pods run the pause image, whose entrypoint waits for ever; a simulated Job container finished after 2 s: since this run it waits too (TestJobOfPauseRunsOn)"},
}

var knownRegexps = compile(KnownFailures)

// whyFailed explains a failed spec, "" if it is not known.
func whyFailed(name string) string { return explain(KnownFailures, knownRegexps, name) }
