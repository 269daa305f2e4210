// Package controlplane runs one Kubernetes control plane as local processes: a
// store (kine in-process by default), kube-apiserver, kube-controller-manager and,
// for a host, kube-scheduler, with a PKI of its own.
package controlplane

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/deprecated"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/pki"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/storage"
)

// DefaultServiceCIDR is the service IP range of an embedded host, and so of the
// virtual clusters on it, which share the host's service IPs.
const DefaultServiceCIDR = "10.96.0.0/12"

// Config describes one control plane.
type Config struct {
	// Name names the cluster in its kubeconfig.
	Name string
	// Dir holds everything of this control plane: pki/, data/, logs/, kubeconfig.
	Dir      string
	Version  k8sdist.Version
	Binaries k8sdist.Binaries
	// ServiceCIDR defaults to DefaultServiceCIDR.
	ServiceCIDR string
	// Scheduler runs a kube-scheduler (a host does; a virtual cluster leaves
	// scheduling to its host).
	Scheduler bool
	// NodeControllers keeps the controllers that need real nodes (a host's). A
	// virtual cluster runs without them, as in vCluster.
	NodeControllers bool
	// Store starts the storage backend; nil means kine on SQLite in Dir/data.
	Store func(dataDir, socketDir string) (storage.Store, error)
	// Flags are appended to the components' flags, overriding ours.
	Flags Flags
	// APIServerOnly runs no controller manager and is ready at /readyz: the
	// bare apiserver that start-up times are measured against.
	APIServerOnly bool
	// Port is the apiserver's secure port; 0 picks a free one. A control
	// plane in a pod needs a fixed one for its Service.
	Port int
	// BindAddress is where the apiserver listens; "" means 127.0.0.1. A
	// control plane in a pod listens on 0.0.0.0 behind its Service.
	BindAddress string
	// SANs are extra names and IP addresses of the serving certificate (the
	// Service names a pod's control plane is reached by).
	SANs []string
	// VerifyKubelets makes the apiserver check the serving certificate of its
	// nodes' kubelet API against the cluster CA: a virtual cluster's nodes are
	// served by its syncer with a certificate of this PKI. A host's simulated
	// nodes serve a certificate of their own.
	VerifyKubelets bool
	// AuditDeprecated makes the apiserver keep an audit log (AuditLogPath),
	// from which the deprecated APIs its clients called are read.
	AuditDeprecated bool
	// APIServerReady, if set, is called once, as soon as the apiserver is
	// ready, with an admin client config and the PKI: what needs the
	// apiserver but not the controller manager starts there, while the
	// controller manager comes up. It must not block.
	APIServerReady func(*rest.Config, pki.Files)
	// TemplateDir holds store templates (storage.SaveTemplate), one per
	// version and kind of control plane. When set, and the store is kine on
	// SQLite, a new control plane starts on a copy of its template and the
	// first one of its kind saves it. "" always bootstraps from scratch.
	TemplateDir string
}

// AuditLogPath is the audit log of the control plane in dir, when
// Config.AuditDeprecated is set.
func AuditLogPath(dir string) string { return filepath.Join(dir, "logs", "audit.log") }

// ControlPlane is a running control plane.
type ControlPlane struct {
	cfg        Config
	socketDir  string
	store      storage.Store
	port       int
	restConfig *rest.Config
	seeded     bool // the store began as a copy of its template

	mu    sync.Mutex
	procs []*proc.Process // in start order; stopped in reverse
	sup   *supervision    // from ready on
	// startControllerManager, until it has run, starts the controller
	// manager (waitReady does, when the apiserver is healthy).
	startControllerManager func() error
}

// Start brings a control plane up and returns once it is ready: the apiserver
// answers /readyz and the controller manager has made the default
// ServiceAccount and published the cluster CA in the default namespace.
// On failure everything started is stopped again and the error says which
// component failed, with the end of its log.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if cfg.Store == nil {
		cfg.Store = storage.StartSQLite
	}
	if err := cfg.Flags.Validate(); err != nil {
		return nil, err
	}
	if err := enoughSpace(cfg.Dir); err != nil {
		return nil, err
	}
	cp := &ControlPlane{cfg: cfg}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	for _, d := range []string{cp.path("data"), cp.path("logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	files, err := pki.Generate(cp.path("pki"), cfg.SANs...)
	if err != nil {
		return nil, err
	}
	if cfg.AuditDeprecated {
		if err := os.WriteFile(cp.path("audit-policy.yaml"), []byte(deprecated.AuditPolicy), 0o600); err != nil {
			return nil, err
		}
	}
	// The controller list comes from the binary's --help; read it while the
	// apiserver starts instead of before.
	controllers := make(chan controllerList, 1)
	if !cfg.APIServerOnly {
		go func() {
			names, err := knownControllers(cfg.Binaries.ControllerManager)
			controllers <- controllerList{names, err}
		}()
	}

	cp.socketDir = cp.path("run")
	if len(cp.socketDir) > 80 {
		// Unix socket paths are limited to 107 bytes; deep state dirs get a short one.
		if cp.socketDir, err = os.MkdirTemp("", "vmatrix-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cp.socketDir, 0o700); err != nil {
		return nil, err
	}
	template, seeded := cp.seed()
	cp.seeded = seeded
	if cp.store, err = cfg.Store(cp.path("data"), cp.socketDir); err != nil {
		return nil, err
	}

	// A free port can be taken by another process between our probe and the
	// apiserver's bind, seconds later; that shows as an exit before it is
	// ready, and we try another port. A port the caller chose is kept.
	for attempt := 1; ; attempt++ {
		err = cp.startProcesses(ctx, files, controllers)
		if err == nil {
			err = cp.waitReady(ctx)
		}
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 || cfg.Port != 0 {
			break
		}
		cp.stopProcesses()
	}
	if err != nil {
		return nil, err
	}
	if template != "" && !seeded {
		cp.note("store template", storage.SaveTemplate(cp.path("data"), template))
	}
	if seeded {
		// The apiserver's "kubernetes" Service keeps the ports it was made
		// with: the template maker's.
		if err := cp.fixKubernetesService(ctx); err != nil {
			return nil, err
		}
	}
	cp.supervise()
	return cp, nil
}

// DefaultTemplateDir is where control planes keep their store templates:
// beside the binaries, per user.
func DefaultTemplateDir() string { return filepath.Join(k8sdist.DefaultCacheDir(), "templates") }

// templateFormat changes when what a template holds does (kine's schema, the
// keys it leaves out), so that older templates are not used.
const templateFormat = "kine-v0.17.5-4"

// seed starts a new SQLite store from its template, when there is one. It
// returns the template's path ("" when templates do not apply) and whether
// the store was seeded from it. A template that cannot be read as a store is
// removed: the cluster bootstraps from scratch and saves a new one.
func (cp *ControlPlane) seed() (template string, seeded bool) {
	if cp.cfg.TemplateDir == "" || storage.HasSQLite(cp.path("data")) {
		return "", false
	}
	key, _ := json.Marshal([]any{templateFormat, cp.cfg.Version.String(), cp.cfg.ServiceCIDR, cp.cfg.Flags, cp.cfg.Scheduler, cp.cfg.NodeControllers})
	sum := sha256.Sum256(key)
	template = filepath.Join(cp.cfg.TemplateDir, fmt.Sprintf("%s-%x.db", cp.cfg.Version, sum[:6]))
	seeded, err := storage.SeedFromTemplate(template, cp.path("data"))
	if err != nil {
		cp.note("store template", err)
		if errors.Is(err, storage.ErrBadTemplate) {
			os.Remove(template)
		}
	}
	return template, seeded
}

// fixKubernetesService points the "kubernetes" Service of a store made from
// a template at this apiserver's port. The apiserver makes that Service once
// and never corrects it; its Endpoints and EndpointSlice, which the template
// leaves out, it makes anew.
func (cp *ControlPlane) fixKubernetesService(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(cp.restConfig)
	if err != nil {
		return err
	}
	svc, err := client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the kubernetes Service: %w", err)
	}
	changed := false
	for i, p := range svc.Spec.Ports {
		if p.Name == "https" && p.TargetPort.IntValue() != cp.port {
			svc.Spec.Ports[i].TargetPort = intstr.FromInt32(int32(cp.port))
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := client.CoreV1().Services(metav1.NamespaceDefault).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("the kubernetes Service: %w", err)
	}
	return nil
}

// note records a problem that costs time but no correctness in the control
// plane's log folder, where artifacts pick it up.
func (cp *ControlPlane) note(what string, err error) {
	if err == nil {
		return
	}
	f, ferr := os.OpenFile(cp.path("logs", "vmatrix.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if ferr != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s: %v\n", time.Now().Format(time.RFC3339), what, err)
}

type controllerList struct {
	names []string
	err   error
}

var errPortTaken = errors.New("port taken")

func (cp *ControlPlane) path(elem ...string) string {
	return filepath.Join(append([]string{cp.cfg.Dir}, elem...)...)
}

// PKI is the control plane's certificates and keys.
func (cp *ControlPlane) PKI() pki.Files { return pki.Files{Dir: cp.path("pki")} }

// KubeconfigPath is the admin kubeconfig of this control plane.
func (cp *ControlPlane) KubeconfigPath() string { return cp.path("kubeconfig") }

// RESTConfig is an admin client config (a copy; callers may change it).
func (cp *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(cp.restConfig) }

// Port is the apiserver's secure port on 127.0.0.1.
func (cp *ControlPlane) Port() int { return cp.port }

// Version is the Kubernetes version this control plane runs.
func (cp *ControlPlane) Version() k8sdist.Version {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.cfg.Version
}

// PIDs lists the child processes, by component name.
func (cp *ControlPlane) PIDs() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	pids := map[string]int{}
	for _, p := range cp.procs {
		pids[p.Name] = p.Pid()
	}
	return pids
}

func (cp *ControlPlane) startProcesses(ctx context.Context, files pki.Files, controllers chan controllerList) error {
	port, err := cp.cfg.Port, error(nil)
	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	cp.port = port
	ca, _ := os.ReadFile(files.CACert())
	cert, _ := os.ReadFile(files.AdminCert())
	key, _ := os.ReadFile(files.AdminKey())
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	if cp.restConfig, err = kubeconfig.Write(cp.KubeconfigPath(), cp.cfg.Name, server, ca, cert, key); err != nil {
		return err
	}
	if cp.cfg.APIServerOnly {
		if err := cp.start(apiserverName, cp.cfg.Binaries.APIServer, cp.apiserverArgs(files, port)); err != nil {
			return err
		}
		return nil
	}
	list := <-controllers
	controllers <- list // kept for a retry
	if list.err != nil {
		return list.err
	}
	if cp.oneProcess() {
		// One process, which starts its controller manager itself once its
		// apiserver is healthy.
		args := append(cp.apiserverArgs(files, port), k8sdist.ControllerManagerFlags)
		cmArgs := slices.DeleteFunc(cp.controllerManagerArgs(files, list.names), func(f string) bool {
			name, _, _ := strings.Cut(f, "=")
			return slices.Contains(registryFlags, name)
		})
		if err := cp.start(controlPlaneName, cp.cfg.Binaries.ControlPlane, append(args, cmArgs...)); err != nil {
			return err
		}
	} else {
		if err := cp.start(apiserverName, cp.cfg.Binaries.APIServer, cp.apiserverArgs(files, port)); err != nil {
			return err
		}
		// The controller manager starts once the apiserver is healthy (waitReady):
		// before, it competes with the apiserver's start-up for CPU and checks
		// the apiserver's health only once a second, losing up to a second.
		cp.startControllerManager = func() error {
			return cp.start(controllerManagerName, cp.cfg.Binaries.ControllerManager, cp.controllerManagerArgs(files, list.names))
		}
	}
	// The scheduler connects as soon as the apiserver answers: its start-up
	// overlaps the apiserver's.
	if cp.cfg.Scheduler {
		config := cp.path("scheduler.yaml")
		// The default client limit (50 requests/s, two per pod: binding and
		// event) would make the scheduler the slowest part of every rollout.
		if err := os.WriteFile(config, []byte(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: `+cp.KubeconfigPath()+`
  qps: 1000
  burst: 2000
leaderElection:
  leaderElect: false
`), 0o644); err != nil {
			return err
		}
		args := []string{"--config=" + config, "--secure-port=0"}
		if err := cp.start("kube-scheduler", cp.cfg.Binaries.Scheduler, args); err != nil {
			return err
		}
	}
	return nil
}

// start runs one component with the user's environment, so with Go's default
// GC target unless GOGC or GOMEMLIMIT are set. A virtual cluster's apiserver
// at GOGC=50 holds about 27 MB less at idle, but starts slower: three
// versions in parallel took 3.5-3.7 s against 3.1-3.3 s, one create
// 2.07-2.12 s against 1.98-2.07 s (vmatrix-bench, 3x5 runs each,
// alternating). The embedded host's at GOGC=50 made rollouts a third slower.
func (cp *ControlPlane) start(name, path string, args []string) error {
	p, err := proc.Start(name, path, args, os.Environ(), cp.path("logs", name+".log"))
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	return nil
}

// advertiseArgs are the flags by which the apiserver publishes itself in the
// "kubernetes" Service's Endpoints and EndpointSlice, as a real cluster's
// does, at addr: a non-loopback address of this machine, of the family of
// the Service range (the apiserver refuses another), the loopback address
// being no valid endpoint. In a pod it is the pod's address, where the
// apiserver listens; on a machine the apiserver listens on loopback only,
// so the address names the machine without being a way in (no container
// of the embedded host would connect). With no such address, it publishes
// nothing.
func advertiseArgs(addr string) []string {
	if addr == "" {
		return []string{"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"}
	}
	return []string{"--advertise-address=" + addr}
}

// isIPv6Range reports whether the first range of a Service CIDR flag value
// ("10.96.0.0/12", "fd00::/108,10.96.0.0/12") is IPv6.
func isIPv6Range(cidrs string) bool {
	first, _, _ := strings.Cut(cidrs, ",")
	ip, _, err := net.ParseCIDR(strings.TrimSpace(first))
	return err == nil && ip.To4() == nil
}

// machineAddress is the first address of the family (IPv6 or IPv4) of this
// machine's interfaces that is up, not loopback and globally routable; ""
// if there is none.
func machineAddress(ipv6 bool) string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && (n.IP.To4() == nil) == ipv6 && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}

func (cp *ControlPlane) apiserverArgs(f pki.Files, port int) []string {
	args := []string{
		"--etcd-servers=" + cp.store.Endpoint(),
		"--bind-address=" + cmp.Or(cp.cfg.BindAddress, "127.0.0.1"),
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + cp.path("pki"),
		"--tls-cert-file=" + f.ServingCert(),
		"--tls-private-key-file=" + f.ServingKey(),
		"--client-ca-file=" + f.CACert(),
		"--anonymous-auth=false",
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.ServiceAccountPub(),
		"--service-account-signing-key-file=" + f.ServiceAccountKey(),
		"--service-cluster-ip-range=" + cp.cfg.ServiceCIDR,
		"--allow-privileged=true",
		"--requestheader-client-ca-file=" + f.FrontProxyCACert(),
		"--requestheader-allowed-names=" + pki.FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + f.FrontProxyClientCert(),
		"--proxy-client-key-file=" + f.FrontProxyClientKey(),
		"--kubelet-client-certificate=" + f.KubeletClientCert(),
		"--kubelet-client-key=" + f.KubeletClientKey(),
		// Nodes here are reached by their address, never by a host name no
		// resolver knows.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP",
		"--profiling=false",
	}
	args = append(args, advertiseArgs(machineAddress(isIPv6Range(cp.cfg.ServiceCIDR)))...)
	if cp.cfg.VerifyKubelets {
		args = append(args, "--kubelet-certificate-authority="+f.CACert())
	}
	if cp.cfg.AuditDeprecated {
		args = append(args, "--audit-policy-file="+cp.path("audit-policy.yaml"), "--audit-log-path="+AuditLogPath(cp.cfg.Dir),
			"--audit-log-maxsize=100", "--audit-log-maxbackup=1")
	}
	if prefix := cp.store.Prefix(); prefix != "" {
		args = append(args, "--etcd-prefix="+prefix)
	}
	return append(args, cp.cfg.Flags.APIServer...)
}

func (cp *ControlPlane) controllerManagerArgs(f pki.Files, known []string) []string {
	args := []string{
		"--kubeconfig=" + cp.KubeconfigPath(),
		"--controllers=" + controllerFlag(known, cp.cfg.NodeControllers),
		"--service-account-private-key-file=" + f.ServiceAccountKey(),
		"--root-ca-file=" + f.CACert(),
		"--cluster-signing-cert-file=" + f.CACert(),
		"--cluster-signing-key-file=" + f.CAKey(),
		"--cluster-name=" + cp.cfg.Name,
		"--leader-elect=false",
		"--secure-port=0",
		// Client-side rate limits, not the apiserver, bound how fast a test's
		// workloads roll out; these are ours alone.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
	}
	return append(args, cp.cfg.Flags.ControllerManager...)
}

// startRestarts is how often a client component (the controller manager,
// the scheduler) is started again when it exits before the control plane is
// ready. Each gives up after its own short wait for a healthy apiserver
// (the scheduler starts with the apiserver, to overlap their start-ups), and
// on a busy machine the apiserver can take longer than that, or stop being
// healthy for a moment.
const startRestarts = 5

// defaultReadyTimeout bounds the wait for a ready control plane when the
// caller's context sets no deadline; a deadline of the caller's is the one
// limit otherwise.
const defaultReadyTimeout = 5 * time.Minute

// waitReady waits for /readyz and for the controller manager to have made
// the default ServiceAccount and published the cluster CA, which a pod in
// the default namespace needs. It starts the controller manager when the
// apiserver is healthy, starts again a client component that exits
// meanwhile, and fails early when the apiserver exits or a component keeps
// exiting.
func (cp *ControlPlane) waitReady(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(cp.restConfig)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	apiReady := false
	restarts := map[string]int{}
	for {
		if err := cp.restartExited(restarts); err != nil {
			return err
		}
		if cp.startControllerManager != nil {
			body, err := client.Discovery().RESTClient().Get().AbsPath("/healthz").Do(ctx).Raw()
			if err == nil && string(body) == "ok" {
				if err := cp.startControllerManager(); err != nil {
					return err
				}
				cp.startControllerManager = nil
			}
		}
		if !apiReady {
			body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Raw()
			apiReady = err == nil && string(body) == "ok"
			if apiReady && cp.cfg.APIServerReady != nil {
				cp.cfg.APIServerReady(rest.CopyConfig(cp.restConfig), cp.PKI())
				cp.cfg.APIServerReady = nil
			}
		}
		if apiReady && cp.cfg.APIServerOnly {
			return nil
		}
		if apiReady && cp.startControllerManager == nil {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if err == nil {
				_, err = client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			}
			if err == nil {
				return nil
			}
			if !apierrors.IsNotFound(err) {
				apiReady = false
			}
		}
		select {
		case <-ctx.Done():
			what := "the apiserver to become ready"
			if apiReady {
				what = "the controller manager to create the default ServiceAccount and the cluster CA's ConfigMap"
			}
			return fmt.Errorf("waiting for %s of %s: %w", what, cp.cfg.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// restartExited starts again each client component that has exited, up to
// startRestarts times each; the apiserver exiting, or a component exiting
// once more, is an error naming it with the end of its log.
func (cp *ControlPlane) restartExited(restarts map[string]int) error {
	for i, p := range cp.procs {
		done, exitErr := p.Exited()
		if !done {
			continue
		}
		if servesAPI(p) && !controllerManagerEnded(p) || restarts[p.Name] >= startRestarts {
			return cp.exitError(p, exitErr, restarts[p.Name])
		}
		np, err := p.Restart()
		if err != nil {
			return err
		}
		restarts[p.Name]++
		cp.procs[i] = np
	}
	return nil
}

func (cp *ControlPlane) exitError(p *proc.Process, err error, restarts int) error {
	tail := p.Tail(15)
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%s: %w: %s", p.Name, errPortTaken, lastWords(tail))
	}
	again := ""
	if restarts > 0 {
		again = fmt.Sprintf(", started %d times", restarts+1)
	}
	return fmt.Errorf("%s %s exited (%v%s): %s\nend of %s:\n%s", p.Name, cp.cfg.Version, err, again, lastWords(tail), p.LogPath, tail)
}

// Stop stops the processes in reverse start order, then the store, and removes
// the socket directory. The state directory stays (its logs are the caller's).
// It is idempotent.
func (cp *ControlPlane) Stop() error {
	cp.stopSupervising()
	errs := []error{cp.stopProcesses()}
	if cp.store != nil {
		errs = append(errs, cp.store.Stop())
	}
	if cp.socketDir != "" {
		errs = append(errs, os.RemoveAll(cp.socketDir))
	}
	return errors.Join(errs...)
}

func (cp *ControlPlane) stopProcesses() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var errs []error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		errs = append(errs, cp.procs[i].Stop(componentGrace(cp.procs[i])))
	}
	cp.procs = nil
	return errors.Join(errs...)
}

// The processes of a control plane, by the names they have in PIDs, Health
// and the logs folder. Where the binaries allow it (k8sdist.Binaries), the
// apiserver and the controller manager run as one process, controlPlaneName.
const (
	apiserverName         = "kube-apiserver"
	controllerManagerName = "kube-controller-manager"
	controlPlaneName      = k8sdist.ControlPlaneProgram
)

// processFlags set what the one process of an apiserver and a controller
// manager holds once for both: logging, feature gates, the emulated
// version. Given the same to both (as --feature-gates on the CLI and
// framework.WithFeatureGates give them), they are what each would have
// alone, and the two run as one process; given to one only, or differently,
// they run as processes of their own, each with its own.
var processFlags = []string{"--v", "--vmodule", "--logging-format", "--log-*", "--feature-gates",
	"--emulated-version", "--emulation-forward-compatible", "--runtime-config-emulation-forward-compatible", "--min-compatibility-version"}

// signalHandlerGate makes the controller manager set up the process's
// signal handler, which the apiserver has set up already: a second one is a
// panic, so a control plane with the gate on runs as two processes.
const signalHandlerGate = "ControllerManagerReleaseLeaderElectionLockOnExit"

// registryFlags are the process flags that the apiserver's and the
// controller manager's commands parse into one registry of the process: in
// one process the apiserver's parse sets them for both, and the controller
// manager is not given them again (its parse would write to what the
// apiserver's /flagz reads meanwhile).
var registryFlags = []string{"--feature-gates", "--emulated-version", "--min-compatibility-version"}

// oneProcess says whether the apiserver and the controller manager run as
// one process: where the binaries have the program, and the user's flags
// give both the same of what one process holds once for both.
func (cp *ControlPlane) oneProcess() bool {
	if cp.cfg.Binaries.ControlPlane == "" {
		return false
	}
	shared := processWide(cp.cfg.Flags.APIServer)
	return slices.Equal(shared, processWide(cp.cfg.Flags.ControllerManager)) && !gateOn(shared, signalHandlerGate)
}

// gateOn says whether the --feature-gates among flags turn gate on, by
// name or as an alpha gate under AllAlpha (or, should it become beta, under
// AllBeta), read as the components read them.
func gateOn(flags []string, gate string) bool {
	set := map[string]bool{}
	for _, f := range flags {
		value, ok := strings.CutPrefix(f, "--feature-gates=")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(value, ",") {
			k, v, _ := strings.Cut(kv, "=")
			k = strings.TrimPrefix(strings.TrimSpace(k), "kube:")
			if on, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
				set[k] = on
			}
		}
	}
	if on, ok := set[gate]; ok {
		return on
	}
	return set["AllAlpha"] || set["AllBeta"]
}

// processWide returns the flags among flags that set what one process
// holds once (processFlags), in their order.
func processWide(flags []string) []string {
	var out []string
	for _, f := range flags {
		name, _, _ := strings.Cut(f, "=")
		for _, p := range processFlags {
			if prefix, ok := strings.CutSuffix(p, "*"); name == p || ok && strings.HasPrefix(name, prefix) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// controllerManagerEnded says whether p, the one process of an apiserver
// and a controller manager, ended because the controller manager did (it
// gives up on an apiserver that stays unhealthy too long, as on a busy
// machine): it may be started again, where an apiserver that fails to
// start would only fail again.
func controllerManagerEnded(p *proc.Process) bool {
	return p.Name == controlPlaneName && strings.Contains(p.Tail(40), k8sdist.ControllerManagerEnded)
}

// servesAPI says whether p is the apiserver, without which nothing else of
// the control plane works.
func servesAPI(p *proc.Process) bool {
	return p.Name == apiserverName || p.Name == controlPlaneName
}

// componentGrace is how long a component gets to exit on SIGTERM.
func componentGrace(p *proc.Process) time.Duration {
	if servesAPI(p) {
		// Its graceful shutdown drains for over a second and keeps nothing:
		// every write it acknowledged is in the store already, and its
		// clients are stopped before it.
		return 0
	}
	return 2 * time.Second
}

// minFreeSpace is what a control plane's folder needs free at its start:
// its store, certificates and logs, with room to grow during a test run.
const minFreeSpace = 100 << 20

// enoughSpace refuses to start a control plane on a file system that is
// (nearly) full: its store would fail half-way, in words that do not say why.
func enoughSpace(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			if free := st.Bavail * uint64(st.Bsize); free < minFreeSpace {
				return fmt.Errorf("%s: only %d MB free on its file system, a control plane needs %d MB", dir, free>>20, minFreeSpace>>20)
			}
			return nil
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// freePort is a variable so that a test can hand out a port that is taken.
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastWords is the line of a log tail that says why a component stopped: the
// last one that reads as an error, else the last one.
func lastWords(tail string) string {
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "Error:") || strings.HasPrefix(l, "E") && len(l) > 5 && l[1] >= '0' && l[1] <= '9' || strings.Contains(l, "failed") {
			return l
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
