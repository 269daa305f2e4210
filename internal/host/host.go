// Package host provides the clusters that virtual clusters run on: an embedded
// one that vmatrix starts itself, or any existing cluster given by a kubeconfig.
package host

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/syncer"
)

// Host is a cluster that virtual clusters sync their workloads into.
type Host interface {
	// RESTConfig is a client config with the rights the syncer needs.
	RESTConfig() *rest.Config
	// KubeconfigPath is a kubeconfig file for the host.
	KubeconfigPath() string
	// ServiceCIDR is the host's service IP range; virtual clusters use the same
	// one, so a Service has one cluster IP on both sides.
	ServiceCIDR() string
	// Stop stops what vmatrix started for this host (nothing for an existing one).
	Stop() error
}

// NodeAnnotation marks the simulated nodes of an embedded host; the KWOK
// controller manages exactly these.
const NodeAnnotation = syncer.SimulatedNodeAnnotation

// EmbeddedConfig describes an embedded host.
type EmbeddedConfig struct {
	Dir      string
	Version  k8sdist.Version
	Binaries k8sdist.Binaries
	KWOK     string // path of the kwok binary
	// Nodes is the number of simulated nodes (default 3), each with NodeCPU,
	// NodeMemory and NodePods of capacity (defaults 32, 256Gi, 110).
	Nodes      int
	NodeCPU    string
	NodeMemory string
	NodePods   int
}

// Embedded is a local control plane of the newest version, with kube-scheduler
// and the KWOK controller simulating its nodes, so pods are scheduled by the real
// scheduler and reach Running with pod IPs without any container runtime.
type Embedded struct {
	cp          *controlplane.ControlPlane
	kwok        *proc.Process
	kubelet     *simulatedKubelet
	provisioner *localProvisioner
	namespaces  *namespaceFinisher
}

// StartEmbedded starts an embedded host and returns once its nodes are Ready.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (_ *Embedded, err error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.NodeCPU == "" {
		cfg.NodeCPU = "32"
	}
	if cfg.NodeMemory == "" {
		cfg.NodeMemory = "256Gi"
	}
	if cfg.NodePods <= 0 {
		cfg.NodePods = 110
	}
	capacity := corev1.ResourceList{}
	for name, q := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: cfg.NodeCPU, corev1.ResourceMemory: cfg.NodeMemory, corev1.ResourcePods: strconv.Itoa(cfg.NodePods),
	} {
		if capacity[name], err = resource.ParseQuantity(q); err != nil {
			return nil, fmt.Errorf("node %s capacity %q: %w", name, q, err)
		}
	}
	cp, err := controlplane.Start(ctx, controlplane.Config{
		Name: "vmatrix-host", Dir: cfg.Dir, Version: cfg.Version, Binaries: cfg.Binaries,
		Scheduler: true, NodeControllers: true, TemplateDir: controlplane.DefaultTemplateDir(),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the embedded host: %w", err)
	}
	h := &Embedded{cp: cp}
	defer func() {
		if err != nil {
			h.Stop()
		}
	}()
	kwokConfig := filepath.Join(cfg.Dir, "kwok.yaml")
	// An explicit configuration: kwok would otherwise read ~/.kwok/kwok.yaml.
	if err := os.WriteFile(kwokConfig, []byte(kwokConfiguration), 0o644); err != nil {
		return nil, err
	}
	h.kwok, err = proc.Start("kwok", cfg.KWOK, []string{
		"--config=" + kwokConfig,
		"--kubeconfig=" + cp.KubeconfigPath(),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + NodeAnnotation + "=fake",
		"--node-lease-duration-seconds=40",
		"--v=WARN",
	}, os.Environ(), filepath.Join(cfg.Dir, "logs", "kwok.log"))
	if err != nil {
		return nil, err
	}
	// The simulated kubelet writes the status of every pod of every node:
	// client-go's default limits (5 requests a second) would pace a rollout.
	kubeletConfig := cp.RESTConfig()
	kubeletConfig.QPS, kubeletConfig.Burst = 300, 600
	kubeconfig.Protobuf(kubeletConfig)
	client, err := kubernetes.NewForConfig(kubeletConfig)
	if err != nil {
		return nil, err
	}
	nodes := map[string]string{}
	for i := 0; i < cfg.Nodes; i++ {
		nodes[fmt.Sprintf("vmatrix-node-%d", i)] = "127.0.0.1"
	}
	if h.kubelet, err = startSimulatedKubelet(ctx, cfg.Dir, cp.PKI(), client, nodes); err != nil {
		return nil, err
	}
	info := nodeInfo(cfg.Version)
	for i := 0; i < cfg.Nodes; i++ {
		if _, err := client.CoreV1().Nodes().Create(ctx, simulatedNode(fmt.Sprintf("vmatrix-node-%d", i), capacity, h.kubelet.port, info), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating simulated node: %w", err)
		}
	}
	if err := h.waitNodesReady(ctx, client, cfg.Nodes); err != nil {
		return nil, err
	}
	if h.provisioner, err = startProvisioner(ctx, client); err != nil {
		return nil, fmt.Errorf("starting the volume provisioner: %w", err)
	}
	if h.namespaces, err = startNamespaceFinisher(ctx, cp.RESTConfig()); err != nil {
		return nil, fmt.Errorf("starting the namespace finisher: %w", err)
	}
	return h, nil
}

// kwokConfiguration leaves the KWOK controller the nodes (its default node
// stages keep them Ready) and the end of a deleted pod (deleted at once);
// the life of a pod is the simulated kubelet's (pods.go), which reads it
// from the pod's spec.
//
//go:embed kwok.yaml
var kwokConfiguration string

// simulatedNode is a node for KWOK to keep Ready, whose kubelet API is
// vmatrix's simulated kubelet on this machine.
func simulatedNode(name string, capacity corev1.ResourceList, kubeletPort int, info corev1.NodeSystemInfo) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{NodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
				"type": "kwok", "node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kubeletPort)}},
			NodeInfo:        info,
		},
	}
}

// nodeInfo is what a kubelet of the host's version on this machine reports:
// KWOK's own ("kwok-v0.7.0" for every version) is no version a client can
// parse, and the machine's kernel and OS are where a pod's processes run.
func nodeInfo(version k8sdist.Version) corev1.NodeSystemInfo {
	read := func(path string) string {
		b, _ := os.ReadFile(path)
		return strings.TrimSpace(string(b))
	}
	osImage := "Linux"
	for _, line := range strings.Split(read("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			osImage = strings.Trim(v, `"'`)
		}
	}
	return corev1.NodeSystemInfo{
		KubeletVersion:          version.String(),
		KubeProxyVersion:        version.String(),
		ContainerRuntimeVersion: "vmatrix://" + version.String(),
		KernelVersion:           read("/proc/sys/kernel/osrelease"),
		OSImage:                 osImage,
		OperatingSystem:         "linux",
		Architecture:            runtime.GOARCH,
	}
}

func (h *Embedded) waitNodesReady(ctx context.Context, client kubernetes.Interface, want int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if done, err := h.kwok.Exited(); done {
			return fmt.Errorf("kwok exited (%v); end of %s:\n%s", err, h.kwok.LogPath, h.kwok.Tail(15))
		}
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil && countReady(nodes.Items) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the simulated nodes to become Ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func countReady(nodes []corev1.Node) int {
	n := 0
	for _, node := range nodes {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

func (h *Embedded) RESTConfig() *rest.Config { return h.cp.RESTConfig() }
func (h *Embedded) KubeconfigPath() string   { return h.cp.KubeconfigPath() }
func (h *Embedded) ServiceCIDR() string      { return controlplane.DefaultServiceCIDR }

// ControlPlane is the host's control plane.
func (h *Embedded) ControlPlane() *controlplane.ControlPlane { return h.cp }

// PIDs lists the host's child processes by component name.
func (h *Embedded) PIDs() map[string]int {
	pids := h.cp.PIDs()
	if h.kwok != nil {
		pids["kwok"] = h.kwok.Pid()
	}
	return pids
}

// Stop stops the namespace finisher, the provisioner and the KWOK
// controller, then the control plane. It is idempotent.
func (h *Embedded) Stop() error {
	var errs []error
	if h.namespaces != nil {
		h.namespaces.Stop()
	}
	if h.provisioner != nil {
		h.provisioner.Stop()
	}
	if h.kwok != nil {
		errs = append(errs, h.kwok.Stop(time.Second))
	}
	if h.kubelet != nil {
		h.kubelet.Stop()
	}
	return errors.Join(append(errs, h.cp.Stop())...)
}

// External is an existing cluster reached through a kubeconfig.
type External struct {
	path        string
	config      *rest.Config
	serviceCIDR string
}

// Connect checks that the cluster of a kubeconfig (and context, "" for the
// current one) answers, and finds its service IP range.
func Connect(ctx context.Context, path, context string) (*External, error) {
	cfg, err := kubeconfig.Load(path, context)
	if err != nil {
		return nil, err
	}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(probe)
	if err != nil {
		return nil, fmt.Errorf("host kubeconfig %s: %w", path, err)
	}
	if _, err := client.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("host cluster of kubeconfig %s does not answer: %w", path, err)
	}
	cidr, err := serviceCIDR(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("host cluster of kubeconfig %s: %w", path, err)
	}
	return &External{path: path, config: cfg, serviceCIDR: cidr}, nil
}

// serviceCIDR reads the host's default ServiceCIDR object (Kubernetes 1.33 and
// newer keep the service range there).
func serviceCIDR(ctx context.Context, client kubernetes.Interface) (string, error) {
	var cidr *networkingv1.ServiceCIDR
	var err error
	cidr, err = client.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", errors.New("no default ServiceCIDR object \"kubernetes\": is the host older than 1.33?")
		}
		return "", fmt.Errorf("reading the service IP range: %w", err)
	}
	if len(cidr.Spec.CIDRs) == 0 {
		return "", errors.New("the default ServiceCIDR lists no range")
	}
	return cidr.Spec.CIDRs[0], nil
}

func (e *External) RESTConfig() *rest.Config { return rest.CopyConfig(e.config) }
func (e *External) KubeconfigPath() string   { return e.path }
func (e *External) ServiceCIDR() string      { return e.serviceCIDR }
func (e *External) Stop() error              { return nil }

// StartNewest starts an embedded host of the newest release as cfg says
// (its Dir, and its nodes' count and capacity, zero meaning the defaults),
// obtaining its binaries and the KWOK controller from src first.
func StartNewest(ctx context.Context, src k8sdist.Source, cfg EmbeddedConfig) (*Embedded, error) {
	v, err := k8sdist.Newest(ctx)
	if err != nil {
		return nil, err
	}
	bins, err := src.Kubernetes(ctx, v)
	if err != nil {
		return nil, err
	}
	kwok, err := src.KWOK(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Version, cfg.Binaries, cfg.KWOK = v, bins, kwok
	return StartEmbedded(ctx, cfg)
}
